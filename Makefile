# Convenience wrappers; dev.py needs only Python 3.11, so it works where make does not.
PYTHON ?= python3

.PHONY: run demo test lint bench
run demo:
	$(PYTHON) dev.py demo
test:
	$(PYTHON) dev.py test
lint:
	$(PYTHON) dev.py lint
bench:
	$(PYTHON) dev.py bench
