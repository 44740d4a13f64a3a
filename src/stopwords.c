/* stopwords: English words that carry no product meaning, in queries ("show
 * me something to sit on") and in descriptions alike. Sorted for bsearch. */
#include "stopwords.h"

#include <string.h>

static const char *const s_stopwords[] = {
    "a", "about", "all", "also", "am", "an", "and", "any", "anything", "are", "as", "at", "be",
    "buy", "by", "can", "could", "do", "does", "find", "for", "from", "get", "give", "got",
    "has", "have", "hello", "hi", "i", "if", "in", "into", "is", "it", "its", "just", "like",
    "looking", "me", "more", "my", "need", "of", "on", "one", "or", "our", "please", "show",
    "so", "some", "something", "that", "the", "their", "them", "there", "these", "this",
    "those", "to", "too", "us", "very", "want", "was", "we", "what", "which", "with", "would",
    "you", "your",
};

bool stopword_is(const char *w, size_t len)
{
    size_t lo = 0, hi = sizeof s_stopwords / sizeof s_stopwords[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strncmp(w, s_stopwords[mid], len);
        if (c == 0)
            c = s_stopwords[mid][len] ? -1 : 0;
        if (c == 0)
            return true;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}
