"""Benchmarks and the evaluation harness: run by hand or by `make eval`/`make bench`, never by `make test`."""
