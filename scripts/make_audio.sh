#!/usr/bin/env bash
# Synthesise the speech fixture __test__/fixtures/speech_16k.wav (+ speech_16k.json).
#
#   bash scripts/make_audio.sh
#
# 1. espeak-ng speaks TEXT (voice en-us, 160 wpm) to a 22.05 kHz WAV;
# 2. sox trims espeak's own leading/trailing near-silence (so the speech
#    boundaries are known), resamples to 16 kHz mono 16-bit signed PCM, and
#    pads exactly 1.0 s of digital silence (all-zero samples) before and after.
#    Dithering is disabled (-D) so the padding stays exactly zero.
#
# Result when generated with espeak-ng 1.51 and SoX 14.4.2 (Debian 12):
#   sampleRate 16000, samples 133053 (8.316 s in all)
#   speech starts at 1.000000 s and ends at 7.315812 s (after padding);
#   there is a ~0.34 s pause between the two sentences (about 3.84-4.18 s).
# speech_16k.json records the same numbers, computed below from the padding and
# the length of the trimmed speech; another espeak-ng version can give slightly
# different lengths, so tests should read the JSON rather than hard-code them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="$ROOT/__test__/fixtures"
WAV="$OUT_DIR/speech_16k.wav"
JSON="$OUT_DIR/speech_16k.json"
TEXT="The quick brown fox jumps over the lazy dog. Oxinfer runs models without blocking the event loop."
VOICE="en-us"
RATE=16000
PAD_SEC=1.0

if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v sox >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends espeak-ng sox
fi

mkdir -p "$OUT_DIR"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

espeak-ng -v "$VOICE" -s 160 -w "$TMP/raw.wav" "$TEXT"

# Trim leading and trailing silence (below 0.1% of full scale) left by espeak.
sox -D "$TMP/raw.wav" "$TMP/trimmed.wav" \
  silence 1 0.005 0.1% reverse silence 1 0.005 0.1% reverse

# Resample to 16 kHz mono 16-bit; keep this un-padded copy to measure it.
sox -D "$TMP/trimmed.wav" -r "$RATE" -c 1 -b 16 -e signed-integer "$TMP/speech.wav" rate -h

# Pad with digital silence before and after.
sox -D "$TMP/speech.wav" "$WAV" pad "$PAD_SEC" "$PAD_SEC"

SPEECH_SAMPLES="$(soxi -s "$TMP/speech.wav")"
SAMPLES="$(soxi -s "$WAV")"
PAD_SAMPLES="$(awk -v p="$PAD_SEC" -v r="$RATE" 'BEGIN { printf "%d", p * r }')"
if [ "$SAMPLES" -ne $((SPEECH_SAMPLES + 2 * PAD_SAMPLES)) ]; then
  echo "unexpected length: $SAMPLES != $SPEECH_SAMPLES + 2 * $PAD_SAMPLES" >&2
  exit 1
fi

# The padding must be exact zeros.
for range in "0 $PAD_SEC" "-$PAD_SEC"; do
  # shellcheck disable=SC2086
  peak="$(sox "$WAV" -n trim $range stat 2>&1 | awk '/Maximum amplitude/ { print $3 }')"
  if [ "$peak" != "0.000000" ]; then
    echo "padding is not silent (trim $range: max amplitude $peak)" >&2
    exit 1
  fi
done

START="$(awk -v p="$PAD_SAMPLES" -v r="$RATE" 'BEGIN { printf "%.6f", p / r }')"
END="$(awk -v p="$PAD_SAMPLES" -v s="$SPEECH_SAMPLES" -v r="$RATE" 'BEGIN { printf "%.6f", (p + s) / r }')"
ESPEAK_VERSION="$(espeak-ng --version | sed -E 's/.*text-to-speech: ([^ ]+).*/\1/')"

cat > "$JSON" <<EOF
{
  "sampleRate": $RATE,
  "samples": $SAMPLES,
  "speechStartSec": $START,
  "speechEndSec": $END,
  "text": "$TEXT",
  "voice": "$VOICE",
  "generator": "espeak-ng $ESPEAK_VERSION + sox (scripts/make_audio.sh)"
}
EOF

echo "wrote $WAV ($SAMPLES samples at $RATE Hz; speech $START s .. $END s)"
echo "wrote $JSON"
