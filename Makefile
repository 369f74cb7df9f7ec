# `make install` builds .venv/ (torch 2.13.0 first, then the project with its dev, mnist, ray, onnx and openvino extras); it is
# idempotent and reruns only when pyproject.toml changes. `make test` and `make serve` depend on it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test serve lint bench browser fonts

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,mnist,ray,onnx,openvino]'
	touch $(STAMP)

test: install browser fonts
	$(PY) -m pytest -q

# The browser test drives Debian's Chromium through Playwright; install it where we may (root with apt-get),
# otherwise that test skips and says why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && \
		apt-get install -y -q chromium >/dev/null; }; }; } || \
		echo "no Chromium here: the browser test will skip (apt-get install chromium)"

# The multilingual test renders Chinese and Japanese lines in Debian's Noto CJK fonts; installed the same way,
# otherwise those cases skip.
fonts:
	@test -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc || { [ "$$(id -u)" = 0 ] && \
		command -v apt-get >/dev/null && { apt-get install -y -q fonts-noto-cjk >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q fonts-noto-cjk >/dev/null; }; }; } || \
		echo "no Noto CJK fonts here: the Chinese/Japanese line tests will skip (apt-get install fonts-noto-cjk)"

serve: install
	$(PY) -m ocr serve

lint: install
	$(PY) -m ruff check .

bench: install
	$(PY) -m ocr bench
