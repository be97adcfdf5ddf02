#!/usr/bin/env bash
# Install the Debian packages the test suite drives (real clients and servers), only those whose
# binaries are missing. Tolerant: without root or apt it warns and exits 0, and the tests that need
# a missing tool skip themselves.
#
#   swaks          -> swaks                  (SMTP client)
#   postfix        -> smtp-source, smtp-sink (load generator / sink; the daemon is NOT started)
#   dovecot-imapd  -> dovecot                (reference IMAP server for comparisons)
#   isync          -> mbsync                 (IMAP sync client)
#   fetchmail      -> fetchmail              (POP3/IMAP client)
#   getmail6       -> getmail                (POP3/IMAP client)
#   offlineimap    -> offlineimap            (IMAP sync client)
#   chromium       -> chromium               (browser for Playwright tests)
set -uo pipefail

export PATH="$PATH:/usr/sbin:/sbin"
declare -A PKG_FOR=(
  [swaks]=swaks
  [smtp-source]=postfix
  [smtp-sink]=postfix
  [dovecot]=dovecot-imapd
  [mbsync]=isync
  [fetchmail]=fetchmail
  [getmail]=getmail6
  [offlineimap]=offlineimap
  [chromium]=chromium
)

missing=()
for bin in "${!PKG_FOR[@]}"; do
  command -v "$bin" >/dev/null 2>&1 && continue
  pkg=${PKG_FOR[$bin]}
  [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done

# swaks needs Net::SSLeay for STARTTLS and implicit TLS.
if ! perl -MNet::SSLeay -e1 >/dev/null 2>&1; then
  missing+=(libnet-ssleay-perl libio-socket-ssl-perl)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

warn() { echo "install-test-deps: warning: $*" >&2; }

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  warn "missing packages: ${missing[*]} (not root or no apt-get; install them yourself, tests needing them skip)"
  exit 0
fi

echo "install-test-deps: installing ${missing[*]}" >&2

# Keep package scripts from starting daemons (postfix on :25, dovecot on :143/:993):
# invoke-rc.d consults policy-rc.d, and exit code 101 means "action forbidden".
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
fi
cleanup() { [ "$created_policy" = 1 ] && rm -f "$policy"; }
trap cleanup EXIT

if command -v debconf-set-selections >/dev/null 2>&1; then
  printf '%s\n' \
    "postfix postfix/main_mailer_type select No configuration" \
    "postfix postfix/mailname string localhost" | debconf-set-selections || true
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq </dev/null; then
  warn "apt-get update failed; continuing with the existing package lists"
fi
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null; then
  warn "apt-get install ${missing[*]} failed; tests needing them will skip"
fi

# Belt and braces: if a daemon we just installed got started anyway, stop it so it holds no ports.
if [[ " ${missing[*]} " == *" postfix "* ]] && postfix status >/dev/null 2>&1; then
  postfix stop >/dev/null 2>&1 || warn "could not stop postfix"
fi
if [[ " ${missing[*]} " == *" dovecot-imapd "* ]] && doveadm service status >/dev/null 2>&1; then
  doveadm stop >/dev/null 2>&1 || warn "could not stop dovecot"
fi
exit 0
