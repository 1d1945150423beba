# Source on the GPU machine from the repository root, after
# recipes/data/device_bundle.sh filled .carry/ here and the run carried it:
#   source recipes/data/device_setup.sh
# It unpacks the .debs into /tmp/debs (never /), installs the wheels into
# /tmp/site and exports PATH, LD_LIBRARY_PATH and PYTHONPATH. Safe to source
# twice. Then, for example:
#   python -m recipes.data.build_corpus --out /tmp/data/asr \
#       --text-file .carry/sentences.txt --jobs 16
# (No "set -e" here: a sourced script must not end the caller's shell.)

_carry="${CARRY_DIR:-$PWD/.carry}"
if [ ! -d "$_carry/deb" ] || [ ! -d "$_carry/whl" ]; then
    echo "device_setup: $_carry/deb or $_carry/whl is missing" >&2
    echo "  (run recipes/data/device_bundle.sh on the development machine" >&2
    echo "   and carry .carry)" >&2
    return 1 2>/dev/null || exit 1
fi

mkdir -p /tmp/debs /tmp/site
# MBROLA (optional, .carry/mbroladeb): Festival finds its voices in the same
# tree and runs the mbrola program from PATH
for _deb in "$_carry"/deb/*.deb "$_carry"/mbroladeb/*.deb; do
    [ -e "$_deb" ] || continue
    dpkg -x "$_deb" /tmp/debs || echo "device_setup: cannot unpack $_deb" >&2
done
case ":$PATH:" in
    *":/tmp/debs/usr/bin:"*) ;;
    *) export PATH="/tmp/debs/usr/bin:$PATH" ;;
esac
case ":${LD_LIBRARY_PATH:-}:" in
    *":/tmp/debs/usr/lib/x86_64-linux-gnu:"*) ;;
    *) export LD_LIBRARY_PATH="/tmp/debs/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac

python3 -m pip install --quiet --no-index --no-deps --upgrade --target /tmp/site \
    --root-user-action=ignore --disable-pip-version-check \
    "$_carry"/whl/*.whl $(ls "$_carry"/srvwhl/*.whl 2>/dev/null) 2>&1 \
    | grep -v "^WARNING: Target directory" >&2
case ":${PYTHONPATH:-}:" in
    *":/tmp/site:"*) ;;
    *) export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" ;;
esac

# Festival: its libraries stay out of everyone else's LD_LIBRARY_PATH; a
# wrapper earlier on PATH gives them to festival alone, with the library
# folder that dpkg -x moved.
if [ -x /tmp/debs/usr/bin/festival ]; then
    mkdir -p /tmp/festdeps /tmp/festival-bin
    for _deb in "$_carry"/festdeb/*.deb; do
        [ -e "$_deb" ] || continue
        dpkg -x "$_deb" /tmp/festdeps || echo "device_setup: cannot unpack $_deb" >&2
    done
    _libs=/tmp/debs/usr/lib/x86_64-linux-gnu:/tmp/festdeps/usr/lib/x86_64-linux-gnu
    _libs=$_libs:/tmp/festdeps/lib/x86_64-linux-gnu
    _libs=$_libs:/tmp/festdeps/usr/lib/x86_64-linux-gnu/pulseaudio  # libpulsecommon
    _share=/tmp/debs/usr/share/festival
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s --libdir %s --datadir %s "$@"\n' \
        "$_libs" /tmp/debs/usr/bin/festival "$_share" "$_share" \
        > /tmp/festival-bin/festival
    chmod +x /tmp/festival-bin/festival
    case ":$PATH:" in
        *":/tmp/festival-bin:"*) ;;
        *) export PATH="/tmp/festival-bin:$PATH" ;;
    esac
    # the corpus workers run festival --pipe (recipes/data/voices.py)
    echo '(print (voice.list))' | festival --pipe 2>/dev/null | grep -q diphone \
        || echo "device_setup: festival does not run" >&2
    unset _libs _share
fi
# Pico: pico2wave reads its voices from /usr/share/pico/lang, a path built
# into it; a link there points at the unpacked data (the machine's own
# /usr/share/pico, if it has one, is left alone).
if ls "$_carry"/picodeb/*.deb >/dev/null 2>&1; then
    for _deb in "$_carry"/picodeb/*.deb; do
        dpkg -x "$_deb" /tmp/debs || echo "device_setup: cannot unpack $_deb" >&2
    done
    [ -e /usr/share/pico ] || ln -s /tmp/debs/usr/share/pico /usr/share/pico \
        || echo "device_setup: cannot link /usr/share/pico" >&2
    pico2wave -l en-US -w /tmp/pico-check.wav "check" 2>/dev/null \
        || echo "device_setup: pico2wave does not run" >&2
    rm -f /tmp/pico-check.wav
fi
flite -lv >/dev/null 2>&1 || echo "device_setup: flite does not run" >&2
python3 -c "import espeakng_loader" 2>/dev/null \
    || echo "device_setup: espeakng_loader is not importable" >&2
unset _carry _deb
