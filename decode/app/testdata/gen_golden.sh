#!/usr/bin/env bash
# Regenerates decode/app/testdata/golden/ from independent tools; the tests
# read these files, never the tools.
#
#   decode/app/testdata/gen_golden.sh [PCAP_DIR]      (default /work/shared/pcaps)
#   JA4_PY=/path/to/FoxIO-LLC/ja4/python/ja4.py decode/app/testdata/gen_golden.sh
#
# For every capture F it writes golden/F.tsv: one row per frame in which tshark
# (TShark 4.0; the corpus oracle files come from 4.0.17) finds a field below,
# with the frame's innermost addresses and ports so the test can find the flow.
# tshark 4.0 has tls.handshake.ja3 but no JA4 field (JA4 arrived in 4.2), so
# when JA4_PY points at FoxIO's reference implementation (python/ja4.py of
# github.com/FoxIO-LLC/ja4, which itself runs on tshark) it also writes
# golden/F.ja4.tsv: the JA4 of each stream's first ClientHello. Without JA4_PY
# the existing .ja4.tsv files are kept.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pcaps=${1:-/work/shared/pcaps}
out=$here/golden
mkdir -p "$out"

command -v tshark >/dev/null || { echo "gen_golden.sh: tshark not found" >&2; exit 1; }
tshark --version | head -1 > "$out/TSHARK_VERSION"

fields=(
  frame.number
  ip.src ipv6.src ip.dst ipv6.dst tcp.srcport tcp.dstport udp.srcport udp.dstport
  tls.handshake.type tls.handshake.extensions_server_name tls.handshake.extensions_alpn_str
  tls.handshake.ja3 tls.handshake.ja3_full tls.handshake.version tls.handshake.extensions.supported_version
  tls.record.version
  dns.flags.response dns.qry.name dns.qry.type dns.flags.rcode dns.count.answers
  http.request.method http.host http.request.uri http.user_agent http.response.code
  ssh.protocol quic.version gquic.version gquic.tag.sni
)
args=()
for f in "${fields[@]}"; do args+=(-e "$f"); done
# The columns after the addresses and ports; a row is kept when one is set.
first_app=10

for pcap in "$pcaps"/*.pcap "$pcaps"/*.pcapng; do
  [ -e "$pcap" ] || continue
  name=$(basename "$pcap")
  {
    (IFS=$'\t'; echo "${fields[*]}")
    # tshark exits non-zero on the corpus' cut and corrupt files after
    # printing every good frame, which is what the test replays too.
    tshark -n -r "$pcap" -T fields -E separator=/t -E occurrence=a -E aggregator=, "${args[@]}" 2>/dev/null |
      awk -F'\t' -v first="$first_app" '{ for (i = first; i <= NF; i++) if ($i != "") { print; next } }' || true
  } > "$out/$name.tsv"

  if [ -n "${JA4_PY:-}" ]; then
    python3 "$JA4_PY" "$pcap" -J 2>/dev/null | python3 -c '
import json, sys
dec = json.JSONDecoder()
text = sys.stdin.read()
i = 0
print("src\tsrcport\tdst\tdstport\tja4")
while True:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    if i >= len(text):
        break
    obj, i = dec.raw_decode(text, i)
    if "JA4.1" in obj:
        print("\t".join(str(obj.get(k, "")) for k in ("src", "srcport", "dst", "dstport", "JA4.1")))
' > "$out/$name.ja4.tsv" || true
  fi
done
if [ -n "${JA4_PY:-}" ]; then
  (cd "$(dirname "$JA4_PY")" && git log -1 --format='FoxIO-LLC/ja4 %H' 2>/dev/null || echo "FoxIO-LLC/ja4 (unknown commit)") > "$out/JA4_VERSION"
fi
# Drop JA4 tables that hold nothing but their header.
for f in "$out"/*.ja4.tsv; do
  [ -e "$f" ] && [ "$(wc -l < "$f")" -le 1 ] && rm -f "$f"
done
echo "golden files in $out"
