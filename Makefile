# chatd: the two commands that matter are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

RELEASE_BIN := build/release/chatd
DEV_BIN := build/dev/chatd

.PHONY: help deps build dev run test unit integration e2e bench clean

help:
	@echo "make run    install dependencies, build, migrate and serve on http://127.0.0.1:8000"
	@echo "make test   install test dependencies, build with sanitizers, run the whole suite"
	@echo "make build  release build only ($(RELEASE_BIN))"
	@echo "make bench  load and micro benchmarks (see bench/RESULTS.md)"

deps:
	@scripts/install-deps

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release

dev:
	@scripts/install-deps --test
	@cmake --preset dev >/dev/null
	@cmake --build --preset dev

run: build
	@mkdir -p data
	@$(RELEASE_BIN) migrate
	@echo "chatd is starting on http://$${HOST:-127.0.0.1}:$${PORT:-8000} (stop it with Ctrl-C)"
	@exec $(RELEASE_BIN) serve

# The whole suite: unit tests, integration tests against SQLite and PostgreSQL, e2e tests.
test: dev
	@scripts/test

unit: dev
	@ctest --preset dev

bench: build
	@scripts/install-deps --bench
	@bench/run

clean:
	rm -rf build
