#!/usr/bin/env bash
# mitmproxy's own unit tests, unmodified, against proxycore (through the `mitmproxy` import
# alias that `pytest -p proxycore.compat` installs). Nothing of mitmproxy is kept in this
# repository: its test files are fetched at run time, pinned to one commit.
#
#   conformance/run.sh                  # all files of conformance/targets.txt
#   conformance/run.sh test/mitmproxy/test_http.py ...   # some of them (one file is cheap;
#                                                         # results of the others are kept)
#
# MITM_SRC  a mitmproxy checkout or export to use instead of downloading (should be MITM_COMMIT)
# PY312     a python >= 3.12 (mitmproxy's conftest needs asyncio.eager_task_factory)
# Results: .cache/conformance/results/<file>.xml|.log and .cache/conformance/summary.md
set -euo pipefail
MITM_COMMIT=8fc25b3045934777b0796d8ec7958bbc257d7bb5
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$ROOT/.cache/conformance
SRC=$WORK/mitmproxy-$MITM_COMMIT
mkdir -p "$WORK"

if [ -n "${MITM_SRC:-}" ]; then
  SRC=$MITM_SRC
elif [ ! -d "$SRC/test" ]; then
  echo "fetching mitmproxy's tests at $MITM_COMMIT" >&2
  url=https://codeload.github.com/mitmproxy/mitmproxy/tar.gz/$MITM_COMMIT
  tmp=$WORK/mitmproxy.tar.gz
  curl -fsSL "$url" -o "$tmp"
  mkdir -p "$SRC"
  tar -xzf "$tmp" -C "$SRC" --strip-components=1 "mitmproxy-$MITM_COMMIT/test" "mitmproxy-$MITM_COMMIT/examples"
  rm -f "$tmp"
fi

PY312=${PY312:-$(for p in python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[23]*/bin/python3.1[23]; do command -v "$p" >/dev/null 2>&1 && "$p" -c "" 2>/dev/null && { command -v "$p"; break; }; done)}
[ -n "$PY312" ] || { echo "no python >= 3.12 found (set PY312)" >&2; exit 1; }
VENV=$WORK/venv
[ -x "$VENV/bin/python" ] || "$PY312" -m venv "$VENV"
# test-only imports of mitmproxy's tests: ldap3 (test_proxyauth), pyperclip (test_export, test_cut)
"$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[dev]" pytest-asyncio pytest-timeout ldap3 pyperclip >/dev/null

# A scratch copy: pytest writes caches and mitmproxy's tests write files next to themselves.
RUN=$WORK/run
rm -rf "$RUN"; mkdir -p "$RUN"
cp -r "$SRC/test" "$RUN/"
[ -d "$SRC/examples" ] && cp -r "$SRC/examples" "$RUN/"
printf '[pytest]\nasyncio_mode = auto\n' > "$RUN/pytest.ini"   # as mitmproxy's pyproject sets it

OUT=$WORK/results
if [ $# -gt 0 ]; then
  targets=("$@")  # a subset: the other files' results from earlier runs are kept
  mkdir -p "$OUT"
else
  mapfile -t targets < <(grep -v '^\s*$' "$ROOT/conformance/targets.txt")
  rm -rf "$OUT"; mkdir -p "$OUT"
fi
for f in "${targets[@]}"; do
  name=$(echo "$f" | sed 's#^test/mitmproxy/##; s#/#__#g; s#\.py$##')
  ( cd "$RUN" && timeout 900 "$VENV/bin/python" -m pytest -q -p no:cacheprovider -p proxycore.compat \
      --timeout 60 --tb=short -rfE --junitxml="$OUT/$name.xml" "$f" >"$OUT/$name.log" 2>&1 ) || true
  echo "$f: $(tail -1 "$OUT/$name.log")"
done
"$VENV/bin/python" "$ROOT/conformance/summarize.py" "$OUT" "${targets[@]}" | tee "$WORK/summary.md"
