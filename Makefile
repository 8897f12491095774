# Tuneforge: `make dev` runs the whole platform locally, `make test` runs the test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Re-install whenever pyproject.toml changes (the stamp carries its hash).
STAMP := $(VENV)/.installed-$(shell (sha256sum pyproject.toml 2>/dev/null || shasum -a 256 pyproject.toml) | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install dev test test-fast bench lint migrate messages

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

dev: migrate
	$(PY) manage.py seed_demo
	$(PY) scripts/dev.py

test: install
	$(PY) scripts/check_services.py
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) scripts/check_services.py
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	$(PY) bench/run_all.py

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	PYTHONPATH=.:platform $(VENV)/bin/lint-imports

# Translations (locale/README.md): collect the UI strings of Python, templates and JS into the
# zh_Hans catalogs, then compile them. New entries come out untranslated: translate them in the
# .po files, run this again and commit the .po and .mo files (tests/i18n fails on a gap).
I18N_IGNORE := --ignore=.venv --ignore=var --ignore=tests --ignore=bench --ignore=docs --ignore=scripts \
	--ignore=samples --ignore=finetune/engine --ignore=build --ignore='*.egg-info'
messages: install
	$(PY) manage.py makemessages -l zh_Hans --add-location=file --no-obsolete $(I18N_IGNORE)
	$(PY) manage.py makemessages -d djangojs -l zh_Hans --add-location=file --no-obsolete $(I18N_IGNORE)
	$(PY) manage.py compilemessages -l zh_Hans $(I18N_IGNORE)
