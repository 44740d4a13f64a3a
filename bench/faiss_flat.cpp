// FAISS's exact inner-product index behind a C interface, for
// bench_search.c. Debian's libfaiss-dev ships the C API's headers but not
// its library (no faiss_IndexFlatIP_new in libfaiss.a), hence this shim.
#include <faiss/IndexFlat.h>
#include <omp.h>

extern "C" {

void *bench_faiss_new(int dim)
{
    omp_set_num_threads(1);    // one core, like the index it is compared with
    return new faiss::IndexFlatIP(dim);
}

void bench_faiss_add(void *index, long n, const float *vectors)
{
    static_cast<faiss::IndexFlatIP *>(index)->add(n, vectors);
}

void bench_faiss_search(void *index, const float *query, int k, float *scores, long *ids)
{
    faiss::Index::idx_t labels[1024];
    static_cast<faiss::IndexFlatIP *>(index)->search(1, query, k, scores, labels);
    for (int i = 0; i < k; i++)
        ids[i] = static_cast<long>(labels[i]);
}

void bench_faiss_free(void *index)
{
    delete static_cast<faiss::IndexFlatIP *>(index);
}

}
