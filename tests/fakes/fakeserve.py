"""What every fake in tests/fakes shares: it listens on 127.0.0.1 (port 0: a
free one the kernel picks), prints the port as the first line of its stdout
(tests/fake_proc.c reads it there), and serves, one thread a request, until
it is stopped (SIGTERM from the test, or Ctrl-C by hand)."""
from http.server import ThreadingHTTPServer


def serve(handler, port=0, server_class=ThreadingHTTPServer, before=None):
    """Serves handler until stopped; before() runs once the port is printed."""
    server = server_class(("127.0.0.1", port), handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    if before:
        before()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
