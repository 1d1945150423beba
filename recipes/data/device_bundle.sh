#!/usr/bin/env bash
# Prepare .carry/ (git-ignored) with what the GPU machine needs to build corpora:
#   .carry/deb/            flite, libflite1, libasound2, festival, libestools2.5 and
#                          Festival's lexicons and English voices (.deb, unpacked there
#                          with dpkg -x)
#   .carry/picodeb/        SVOX Pico (pico2wave, its library, its voice data and libpopt0),
#                          from Debian's non-free section, read through a private apt
#                          list so this machine's sources stay as they are
#   .carry/mbroladeb/      MBROLA, its voices us1, us2, us3, en1, Festival's voices built on
#                          them and the festlex-oald lexicon en1 needs (contrib and
#                          non-free, the same private apt list; unpacked with the rest)
#   .carry/festdeb/        the shared libraries Festival links to (.deb); unpacked apart
#                          and seen by festival alone, through a wrapper
#   .carry/whl/            espeakng-loader for CPython 3.12 manylinux x86_64, with the
#                          non-English espeak-ng dictionaries removed (10 MB -> ~2 MB)
#   .carry/sentences.txt   the cleaned fortunes sentences (the GPU machine has no fortunes)
#   .carry/wordnet.txt.gz  WordNet's definitions and examples as sentences, for
#                          build_corpus --extra-train-text (from wordnet-base)
#   .carry/srvwhl/         the server's pure wheels (starlette, uvicorn, websockets, ...)
#                          for benchmarks/server_load.py on the GPU machine; the
#                          setup script installs them into /tmp/site too
# Run from anywhere on the development machine:
#   bash recipes/data/device_bundle.sh [EXTRA_WHEEL==VERSION ...]
# then pass carry=[".carry"] to the device tool and, there:
#   source recipes/data/device_setup.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
carry="$root/.carry"
python="${PYTHON:-$root/.venv/bin/python}"
espeak_version="0.2.4"
mkdir -p "$carry/deb" "$carry/whl"

# Debian packages: flite needs libflite1, which needs libasound2 (Ubuntu 24.04
# renamed it libasound2t64 and may not have it installed).
(cd "$carry/deb" && rm -f ./*.deb && apt-get download flite libflite1 libasound2 \
    festival libestools2.5 festlex-cmu festlex-poslex \
    festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts)
# Festival links to sound, X and codec libraries that a GPU image may lack;
# device_setup.sh gives these to the festival program only.
mkdir -p "$carry/festdeb"
(cd "$carry/festdeb" && rm -f ./*.deb && apt-get download libasyncns0 libbsd0 \
    libcap2 libdbus-1-3 libflac12 libgcrypt20 libgomp1 libgpg-error0 liblz4-1 \
    liblzma5 libmd0 libmp3lame0 libmpg123-0 libogg0 libopus0 libpulse0 \
    libsndfile1 libsystemd0 libtinfo6 libvorbis0a libvorbisenc2 libx11-6 \
    libx11-xcb1 libxau6 libxcb1 libxdmcp6 libzstd1)

# SVOX Pico and MBROLA live in Debian's contrib and non-free sections: fetch
# them with a private package list (nothing here is installed or reconfigured).
lists="$(mktemp -d)"
mkdir -p "$lists/lists/partial" "$lists/cache/archives/partial"
echo "deb http://deb.debian.org/debian bookworm main contrib non-free" > "$lists/sources.list"
apt_private=(-o "Dir::Etc::sourcelist=$lists/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$lists/lists" -o "Dir::Cache=$lists/cache")
apt-get "${apt_private[@]}" update -qq
mkdir -p "$carry/picodeb"
(cd "$carry/picodeb" && rm -f ./*.deb && apt-get "${apt_private[@]}" download \
    libttspico-utils libttspico0 libttspico-data libpopt0)
mkdir -p "$carry/mbroladeb"
(cd "$carry/mbroladeb" && rm -f ./*.deb && apt-get "${apt_private[@]}" download \
    mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 \
    festvox-us1 festvox-us2 festvox-us3 festvox-en1 festlex-oald)
rm -rf "$lists"

# Wheels for the GPU machine's Python (3.12); it lacks soundfile, librosa, soxr,
# websockets and jiwer, none of which the corpus builder uses.
rm -f "$carry"/whl/*.whl
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$carry/whl" \
    "espeakng-loader==$espeak_version" "$@"

# Keep English only in the espeak-ng data: a rewritten wheel with a valid RECORD.
"$python" - "$carry"/whl/espeakng_loader-*.whl <<'EOF'
import base64, hashlib, re, sys, zipfile
from pathlib import Path

path = Path(sys.argv[1])
keep = re.compile(r"espeak-ng-data/(?!.*_dict$)|espeak-ng-data/en_dict$")
with zipfile.ZipFile(path) as wheel:
    items = [(i, wheel.read(i)) for i in wheel.infolist()]
records, kept = [], []
for info, data in items:
    name = info.filename
    if "espeak-ng-data/" in name and not keep.search(name):
        continue
    if name.endswith(".dist-info/RECORD"):
        record_name = name
        continue
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    records.append(f"{name},sha256={digest.decode()},{len(data)}")
    kept.append((info, data))
records.append(f"{record_name},,")
slim = path.with_suffix(".tmp")
with zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as wheel:
    for info, data in kept:
        wheel.writestr(info, data, zipfile.ZIP_DEFLATED)
    wheel.writestr(record_name, "\n".join(records) + "\n")
slim.replace(path)
print(f"{path.name}: {len(items) - len(kept) - 1} non-English files removed")
EOF

# The sentence list (built from /usr/share/games/fortunes on this machine).
(cd "$root" && "$python" -m recipes.data.sentences --out "$carry/sentences.txt")
# WordNet's data files, unpacked from Debian's wordnet-base (nothing installed).
wordnet="$(mktemp -d)"
(cd "$wordnet" && apt-get download wordnet-base && dpkg -x wordnet-base_*.deb .)
(cd "$root" && "$python" -m recipes.data.sentences --source wordnet \
    --wordnet-dir "$wordnet/usr/share/wordnet" --out "$carry/wordnet.txt.gz")
rm -rf "$wordnet"

du -sh "$carry"/deb "$carry"/festdeb "$carry"/picodeb "$carry"/whl "$carry"/sentences.txt \
    "$carry"/wordnet.txt.gz
du -sh "$carry"

# The server's dependencies at the versions installed here (GPU benchmarks of
# `speech serve`, e.g. TTS time to first audio at 1/16/64 streams).
mkdir -p "$carry/srvwhl"
rm -f "$carry"/srvwhl/*.whl
server_pins=$("$python" -c '
from importlib.metadata import version
names = ["starlette", "uvicorn", "websockets", "python-multipart", "h11", "anyio",
         "click", "sniffio", "idna"]
print(" ".join(f"{n}=={version(n)}" for n in names))
')
# shellcheck disable=SC2086
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$carry/srvwhl" $server_pins
