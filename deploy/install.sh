#!/bin/sh
# Installs fleetops-agent from a fleetops server, registers this host and
# starts the agent under systemd. Usage (as root):
#   curl -fsSL URL/install.sh | sudo sh -s -- --server URL \
#       --activation-id ID --activation-code CODE [--server-fingerprint sha256:HEX \
#       --pinned-pubkey sha256//BASE64] [--ca-file PATH] [--name NAME] [--insecure]
set -eu

server="" id="" code="" fingerprint="" pin="" cafile="" name="" insecure=""
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server="$2"; shift 2 ;;
    --activation-id) id="$2"; shift 2 ;;
    --activation-code) code="$2"; shift 2 ;;
    --server-fingerprint) fingerprint="$2"; shift 2 ;;
    --pinned-pubkey) pin="$2"; shift 2 ;;
    --ca-file) cafile="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --insecure) insecure="1"; shift ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$server" ] || { echo "install.sh: --server is required" >&2; exit 2; }
[ -n "$id" ] || { echo "install.sh: --activation-id is required" >&2; exit 2; }
[ -n "$code" ] || { echo "install.sh: --activation-code is required" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo sh -s -- ...)" >&2; exit 2; }

case "$(uname -m)" in
  x86_64|amd64) arch=amd64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) echo "install.sh: unsupported architecture $(uname -m)" >&2; exit 2 ;;
esac

curl_tls=""
if [ -n "$cafile" ]; then curl_tls="--cacert $cafile"; fi
# A self-signed server is trusted by pinning its public key: curl skips CA
# checks but refuses any other key, and the agent pins the certificate.
if [ -n "$pin" ]; then curl_tls="-k --pinnedpubkey $pin"; fi
if [ -n "$insecure" ]; then curl_tls="-k"; fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# shellcheck disable=SC2086
curl -fsSL $curl_tls -o "$tmp" "$server/downloads/fleetops-agent-linux-$arch"
install -m 0755 "$tmp" /usr/local/bin/fleetops-agent
# shellcheck disable=SC2086
curl -fsSL $curl_tls -o /etc/systemd/system/fleetops-agent.service "$server/downloads/fleetops-agent.service"

set -- register --server "$server" --activation-id "$id" --activation-code "$code" --state-dir /var/lib/fleetops-agent
[ -n "$fingerprint" ] && set -- "$@" --server-fingerprint "$fingerprint"
[ -n "$cafile" ] && set -- "$@" --ca-file "$cafile"
[ -n "$name" ] && set -- "$@" --name "$name"
[ -n "$insecure" ] && set -- "$@" --insecure
/usr/local/bin/fleetops-agent "$@"

systemctl daemon-reload
systemctl enable --now fleetops-agent.service
echo "fleetops-agent installed and running"
