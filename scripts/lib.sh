# Shared by the scripts in scripts/ (sourced, never run):
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
#   REPO_ROOT             the checkout's root
#   use_bun               Bun (the version in .bun-version, from the npm registry) and the packages in
#                         bun.lock, through scripts/bootstrap.sh; then both on PATH. Returns 1 if that fails.
#   use_go WHO WHAT       Go on PATH (also from /usr/local/go/bin), the local toolchain only
#                         (GOTOOLCHAIN=local). Without Go it prints
#                         "WHO: FAILED: the Go toolchain (go) is not installed or not on PATH; WHAT needs
#                         Go >= 1.26" and returns 1.
#   go_counts LOG         "P F": the --- PASS and --- FAIL lines of a `go test -v` log (subtests included)
#   bun_counts LOG        "P F": the summary lines of a `bun test` log (0 0 without them)
#   failing_tests LOG     the name of each failed test in a `bun test` or `go test -v` log, one a line

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

use_bun() {
  "$REPO_ROOT/scripts/bootstrap.sh" || return 1
  case ":$PATH:" in
    *":$REPO_ROOT/.tools/node_modules/.bin:"*) ;;
    *) export PATH="$REPO_ROOT/.tools/node_modules/.bin:$REPO_ROOT/node_modules/.bin:$PATH" ;;
  esac
}

use_go() { # WHO WHAT
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi
  if ! command -v go >/dev/null 2>&1; then
    echo "$1: FAILED: the Go toolchain (go) is not installed or not on PATH; $2 needs Go >= 1.26" >&2
    return 1
  fi
  export GOTOOLCHAIN=local
}

go_counts() { # LOG
  local p f
  p=$(grep -cE -- '^\s*--- PASS' "$1" 2>/dev/null || true)
  f=$(grep -cE -- '^\s*--- FAIL' "$1" 2>/dev/null || true)
  echo "${p:-0} ${f:-0}"
}

bun_counts() { # LOG
  local p f
  p=$(grep -Eo '^ *[0-9]+ pass$' "$1" 2>/dev/null | tail -1 | grep -Eo '[0-9]+' || true)
  f=$(grep -Eo '^ *[0-9]+ fail$' "$1" 2>/dev/null | tail -1 | grep -Eo '[0-9]+' || true)
  echo "${p:-0} ${f:-0}"
}

failing_tests() { # LOG
  # bun prints "(fail) file > describe > name [12.3ms]"; go prints "--- FAIL: TestName/sub (1.2s)".
  [ -f "$1" ] || return 0
  sed -nE -e 's/^\(fail\) (.*)$/\1/p' -e 's/^ *--- FAIL: ([^ ]+).*/\1/p' "$1" | sed -E 's/ \[[0-9.]+m?s\]$//' | sort -u
}
