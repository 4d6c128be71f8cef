#!/usr/bin/env bash
# mailqbot's Postfix lab: a real Postfix, DNS, misbehaving destinations and two SSH logins
# for the bot (sudoers, and the forced-command wrapper, both from deploy/), all on loopback.
# Run as root on Debian 12 (no systemd needed).
#
#   lab.sh up | down | status | fill N [--clear] | clear
#
# `up` is idempotent: it installs what is missing and (re)starts only what changed or is down.
# See tests/lab/README.md.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_DIR/../.." && pwd)
DEPLOY=$REPO/deploy # the files an operator installs on a mail host
STATE=/var/lib/mailqbot-lab
PF_LAB=/etc/postfix/mailqbot-lab
PF_LOG=/var/log/postfix.log
LAB_USER=mailqbot       # deploy/sudoers.mailqbot; the bot sends `sudo -n ...`
SUDO_LOG=/var/log/mailqbot-lab-sudo.log  # what sudo ran or refused for the bot's users
WRAPPER_USER=mailqbot-fc # deploy/mailqbot-wrapper forced on its key (sudo = false)
# deploy/sudoers.mailqbot without two of its rules (`postsuper -d - active` and du on the
# spool), as a host set up from an older or hand-edited copy: `mailqbot doctor` names both.
PARTIAL_USER=mailqbot-partial
WRAPPER=/usr/local/libexec/mailqbot-wrapper
SSH_PORT=2222
SERVFAIL_PORT=5399
PACKAGES=(postfix openssh-server sudo pflogsumm dnsmasq-base libsasl2-modules shellcheck)

# class             domain          MX address   (destinations.py serves each class by name)
DESTINATIONS="
greylist            greylist.test   127.0.0.2
refused             refused.test    127.0.0.3
connect_timeout     blackhole.test  127.0.0.4
greeting_timeout    silent.test     127.0.0.5
banner_421          busy.test       127.0.0.6
tls_required        notls.test      127.0.0.7
sasl_failed         authfail.test   127.0.0.8
mailbox_full        full.test       127.0.0.9
lost_connection     dropdata.test   127.0.0.10
sink                sink.test       127.0.0.11
dns_servfail        dnsfail.test    -
"
# Endpoints for /mailq diagnose: served by destinations.py and in DNS, but not routed by
# transport_maps and not filled by fill.py (Postfix finds them by MX like any domain).
DIAG_ENDPOINTS="
tls_ok              tls.test        127.0.0.12
tls_refused         tlsrefused.test 127.0.0.13
port25_filtered     walled-a.test   127.0.0.14
port25_filtered     walled-b.test   127.0.0.15
port25_filtered     walled-c.test   127.0.0.16
policy_softfail     policy.test     127.0.0.17
"
# Fake relay providers for /mailq diagnose, each answering on 25 and 587 like the provider
# (destinations.py relay_*). diagnose knows these .test names through [diagnose]
# relay_providers (tests/diag/test_relay_lab.py); transport_maps sends the last column's
# domain through each with the relay transport (SASL on), logging in with RELAY_LOGINS.
# class          relay host name                 address     domain routed through it
RELAYS="
relay_sendgrid   smtp.sendgrid.test              127.0.0.40  sendgrid.relay.test
relay_sendgrid   user.sendgrid.test              127.0.0.40  sendgrid-user.relay.test
relay_ses        email-smtp.eu-west-1.ses.test   127.0.0.41  ses.relay.test
relay_ses        email-smtp.us-east-1.ses.test   127.0.0.41  ses-iam.relay.test
relay_mailgun    smtp.mailgun.test               127.0.0.42  mailgun.relay.test
relay_postmark   smtp.postmarkapp.test           127.0.0.43  postmark.relay.test
relay_postmark   token.postmarkapp.test          127.0.0.43  postmark-token.relay.test
relay_sendgrid   credits.sendgrid.test           127.0.0.40  sendgrid-credits.relay.test
relay_mailgun    login.mailgun.test              127.0.0.42  mailgun-login.relay.test
relay_ses_tls    email-smtp.us-west-2.ses.test   127.0.0.44  ses-notls.relay.test
"
# Domains sent to a fake relay with the smtp transport, which makes no login (SASL is on for
# the relay transport only): the relay refuses the sender as its provider does without one.
# relay host name                 domain routed through it
RELAYS_NO_LOGIN="
email-smtp.eu-west-1.ses.test     ses-nologin.relay.test
smtp.sendgrid.test                sendgrid-nologin.relay.test
"
# The logins (not secrets): SendGrid's is right (user apikey), user.sendgrid.test's user is
# an account name; SES eu-west-1 has SMTP credentials (a 44-character password), us-east-1 an
# IAM key pair (a 40-character secret, which SES refuses); Mailgun's is right; Postmark's
# user is not its server token, token.postmarkapp.test's is (the token as user and password).
# credits.sendgrid.test's key is one of an account whose credits are used up; the Mailgun
# login.mailgun.test login is the API key (user api), not a domain's SMTP login; us-west-2 has
# SMTP credentials, but Postfix sends them without STARTTLS (smtp_tls_security_level is empty).
RELAY_LOGINS="
[smtp.sendgrid.test]:587 apikey:SG.lab-key-not-a-secret
[user.sendgrid.test]:587 lab-account:SG.lab-key-not-a-secret
[email-smtp.eu-west-1.ses.test]:587 AKIALABSMTPNOTASECRET:BLabSmtpPasswordNotASecretAbcdefghijklmnopqr
[email-smtp.us-east-1.ses.test]:587 AKIALABIAMNOTASECRET:labIamSecretAccessKeyNotASecret012345678
[smtp.mailgun.test]:587 postmaster@mg.lab.test:lab-password-not-a-secret
[smtp.postmarkapp.test]:587 lab-user:lab-server-token-not-a-secret
[token.postmarkapp.test]:587 lab-server-token:lab-server-token
[credits.sendgrid.test]:587 apikey:SG.lab-key-out-of-credits
[login.mailgun.test]:587 api:key-lab-api-key-not-a-secret
[email-smtp.us-west-2.ses.test]:587 AKIALABSMTPNOTASECRET:BLabSmtpPasswordNotASecretAbcdefghijklmnopqr
"
PUBLIC_DNS_PORT=5354 # the "public view" resolver the bot's diagnose uses in the lab

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

destinations() { # class domain addr, one line each
  awk 'NF == 3' <<<"$DESTINATIONS"
}

diag_endpoints() { # class domain addr, one line each
  awk 'NF == 3' <<<"$DIAG_ENDPOINTS"
}

relays() { # class relay-host addr routed-domain, one line each
  awk 'NF == 4' <<<"$RELAYS"
}

# changed FILE [MODE] < content: install the content if it differs; true if it did.
changed() {
  local file=$1 mode=${2:-644} tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$file"
}

# running PIDFILE WORD: the process in PIDFILE is alive and WORD is in its command line.
running() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && grep -qaF -- "$2" "/proc/$pid/cmdline"
}

stop_pid() { # PIDFILE WORD
  local pid i
  running "$1" "$2" || { rm -f "$1"; return 0; }
  pid=$(<"$1")
  kill "$pid"
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$1"
}

wait_for_file() { # FILE SECONDS
  local i
  for i in $(seq $(($2 * 10))); do [[ -s $1 ]] && return 0; sleep 0.1; done
  return 1
}

system_python() {
  if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else echo "$REPO/.venv/bin/python"; fi
}

# --- 1. packages ------------------------------------------------------------------------

packages_missing() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed' || return 0
  done
  return 1
}

install_packages() {
  packages_missing || return 0
  log "installing ${PACKAGES[*]}"
  local own_policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then # keep package scripts from starting services
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select Local only
postfix postfix/mailname string mail.lab.test
EOF
  local rc=0
  { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; } >&2 || rc=$?
  [[ -z $own_policy ]] || rm -f /usr/sbin/policy-rc.d
  [[ $rc -eq 0 ]] || die "apt-get failed ($rc)"
}

# --- 2. state directory and keys ----------------------------------------------------------

setup_state() {
  install -d -m 755 "$STATE"
  [[ -f $STATE/ssh_host_ed25519_key ]] ||
    ssh-keygen -q -t ed25519 -N '' -C "mailqbot-lab host" -f "$STATE/ssh_host_ed25519_key"
  [[ -f $STATE/id_ed25519 ]] ||
    ssh-keygen -q -t ed25519 -N '' -C "mailqbot-lab client" -f "$STATE/id_ed25519"
  chmod 600 "$STATE/ssh_host_ed25519_key" "$STATE/id_ed25519"
  printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1,2 "$STATE/ssh_host_ed25519_key.pub")" |
    changed "$STATE/known_hosts" || true
}

# --- 3. DNS: dnsmasq on 127.0.0.1:53 -------------------------------------------------------

# dns_config [host|public]: "host" is the resolver Postfix uses (port 53); "public" (port
# $PUBLIC_DNS_PORT) is what the rest of the world sees: the same records, except that
# hostdns.test resolves there while the host's resolver answers SERVFAIL for it.
dns_config() {
  local view=${1:-host} port=53 suffix=
  [[ $view == public ]] && port=$PUBLIC_DNS_PORT suffix=-public
  cat <<EOF
# mailqbot lab resolver (written by tests/lab/lab.sh): answers for .test only.
port=$port
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
no-poll
domain-needed
bogus-priv
local=/test/
user=nobody
group=nogroup
pid-file=$STATE/dnsmasq$suffix.pid
log-facility=$STATE/dnsmasq$suffix.log
# dnsfail.test: the upstream answers SERVFAIL, so Postfix defers ("Host not found, try again").
server=/dnsfail.test/127.0.0.1#$SERVFAIL_PORT
# A DNSBL zone: 127.0.0.2 is listed (RFC 5782 test point), every other address is NXDOMAIN.
host-record=2.0.0.127.dnsbl.test,127.0.0.2
txt-record=2.0.0.127.dnsbl.test,"127.0.0.2 is listed in the lab DNSBL, see https://dnsbl.test/q?ip=127.0.0.2"
# A second DNSBL zone that lists the lab host's own sending address, 127.0.0.1.
address=/1.0.0.127.bl.test/127.0.0.2
txt-record=1.0.0.127.bl.test,"127.0.0.1 listed in bl.test: spam trap hits, delist at https://bl.test/remove"
# A DNSBL that refuses this resolver, as Spamhaus answers queries from public resolvers:
# 127.255.255.254 is an error code, not a listing.
address=/1.0.0.127.refusing.test/127.255.255.254
# The lab host's sending address has forward-confirmed reverse DNS.
ptr-record=1.0.0.127.in-addr.arpa,mail.lab.test
address=/mail.lab.test/127.0.0.1
# Sender domains: invoices.test authorises the lab host in SPF; shop.test does not.
txt-record=invoices.test,"v=spf1 ip4:127.0.0.1 -all"
txt-record=_dmarc.invoices.test,"v=DMARC1; p=none"
txt-record=shop.test,"v=spf1 ip4:192.0.2.10 ~all"
txt-record=_dmarc.shop.test,"v=DMARC1; p=quarantine"
EOF
  if [[ $view == public ]]; then
    printf 'mx-host=hostdns.test,mx.hostdns.test,10\nhost-record=mx.hostdns.test,127.0.0.11\n'
  else
    printf 'server=/hostdns.test/127.0.0.1#%s\n' "$SERVFAIL_PORT"
  fi
  local class domain addr routed
  while read -r class domain addr; do
    [[ $addr == - ]] && continue
    printf 'mx-host=%s,mx.%s,10\nhost-record=mx.%s,%s\n' "$domain" "$domain" "$domain" "$addr"
  done < <(destinations; diag_endpoints)
  while read -r class domain addr routed; do
    printf 'host-record=%s,%s\n' "$domain" "$addr"
  done < <(relays)
}

start_dns() {
  local view conf pid suffix
  for view in host public; do
    suffix=
    [[ $view == public ]] && suffix=-public
    conf=$STATE/dnsmasq$suffix.conf pid=$STATE/dnsmasq$suffix.pid
    if dns_config "$view" | changed "$conf" || ! running "$pid" dnsmasq; then
      stop_pid "$pid" dnsmasq
      dnsmasq --test -C "$conf" >/dev/null 2>&1 || dnsmasq --test -C "$conf"
      dnsmasq -C "$conf" # SIGHUP does not re-read the config: always a fresh start
      log "dnsmasq ($view view) started"
    fi
  done
}

# --- 4. destinations on 127.0.0.2-.11 -----------------------------------------------------

destination_args() {
  local class domain addr
  while read -r class domain addr; do
    [[ $addr == - ]] && continue
    printf '%s=%s\n--name=%s=mx.%s\n' "$addr" "$class" "$addr" "$domain"
  done < <(destinations; diag_endpoints)
  relays | awk '!seen[$3]++ { printf "%s=%s\n--name=%s=%s\n", $3, $1, $3, $2 }'
  printf -- '--servfail=127.0.0.1:%s\n' "$SERVFAIL_PORT"
  printf -- '--tls-cert=%s\n--tls-key=%s\n' "$STATE/tls.crt" "$STATE/tls.key"
}

# A self-signed certificate for mx.tls.test, valid 30 days, renewed when one day is left.
setup_tls_cert() {
  if [[ -s $STATE/tls.crt ]] && openssl x509 -checkend 86400 -noout -in "$STATE/tls.crt" >/dev/null; then
    return 1
  fi
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=mx.tls.test" \
    -keyout "$STATE/tls.key" -out "$STATE/tls.crt" 2>/dev/null
  chmod 600 "$STATE/tls.key"
}

start_destinations() {
  local args script=$STATE/destinations.py stamp
  mapfile -t args < <(destination_args)
  changed "$script" 755 <"$LAB_DIR/destinations.py" && stamp=1 || stamp=
  setup_tls_cert && stamp=1
  printf '%s\n' "${args[@]}" | changed "$STATE/destinations.args" && stamp=1
  if [[ -n $stamp ]] || ! running "$STATE/destinations.pid" destinations.py; then
    stop_pid "$STATE/destinations.pid" destinations.py
    "$(system_python)" "$script" --daemon --pidfile "$STATE/destinations.pid" \
      --log "$STATE/destinations.log" "${args[@]}"
    log "destinations started on 127.0.0.2-127.0.0.17, relays on 127.0.0.40-127.0.0.44"
  fi
}

# --- 5. Postfix ---------------------------------------------------------------------------

postfix_maps() {
  local class domain addr transport rc=1 # 0: something changed
  install -d -m 755 "$PF_LAB"
  while read -r class domain addr; do
    case $class in
      dns_servfail) transport="smtp:" ;;                   # MX lookup -> SERVFAIL
      sasl_failed) transport="relay:[mx.$domain]" ;;       # SASL is on for relay only
      relay) transport="relay:[$addr]:587" ;;              # a provider: addr is its host name
      relay_no_login) transport="smtp:[$addr]:587" ;;      # the same, without SASL
      *) transport="smtp:[mx.$domain]" ;;
    esac
    printf '%-16s %s\n' "$domain" "$transport"
  done < <(destinations; relays | awk '{ print "relay", $4, $2 }'
    awk 'NF == 2 { print "relay_no_login", $2, $1 }' <<<"$RELAYS_NO_LOGIN") |
    changed "$PF_LAB/transport" && rc=0
  echo "[mx.notls.test] encrypt" | changed "$PF_LAB/tls_policy" && rc=0
  { echo "[mx.authfail.test] lab-user:not-a-secret"; awk 'NF' <<<"$RELAY_LOGINS"; } |
    changed "$PF_LAB/sasl_passwd" 600 && rc=0
  local map
  for map in transport tls_policy sasl_passwd; do
    if [[ $PF_LAB/$map -nt $PF_LAB/$map.db || ! -f $PF_LAB/$map.db ]]; then
      postmap "hash:$PF_LAB/$map"
      rc=0
    fi
  done
  return $rc
}

MAIN_CF=(
  "myhostname=mail.lab.test"
  "mydestination=mail.lab.test, localhost"
  "mynetworks=127.0.0.0/8"
  "inet_interfaces=loopback-only"
  "inet_protocols=ipv4"
  "smtp_bind_address=127.0.0.1"
  "default_transport=smtp" # "Local only" set these two to error
  "relay_transport=relay"
  "transport_maps=hash:$PF_LAB/transport"
  "smtp_tls_policy_maps=hash:$PF_LAB/tls_policy"
  "maillog_file=$PF_LOG"
  "minimal_backoff_time=4d" # the deferred queue holds still during tests: a lab that stays
  "maximal_backoff_time=4d" # up for days must not retry a batch in the middle of a run
  "smtp_connect_timeout=5s"
  "smtp_helo_timeout=5s"
)
MASTER_CF=( # SASL on the relay transport only
  "relay/unix/smtp_sasl_auth_enable=yes"
  "relay/unix/smtp_sasl_password_maps=hash:$PF_LAB/sasl_passwd"
  "relay/unix/smtp_sasl_security_options=noanonymous"
)

# The package's own main.cf and master.cf, kept at the first `up`: every `up` rebuilds the
# lab's configuration from them, so a setting or a master.cf service that something else
# added (an older lab, a manual test) never survives into the next run.
keep_pristine() {
  local f
  for f in main.cf master.cf; do
    [[ -f $STATE/$f.pristine ]] || cp /etc/postfix/$f "$STATE/$f.pristine"
  done
}

# postfix_settings: true if main.cf or master.cf changed. Files are replaced only when
# their content differs: Postfix commands wait until main.cf is more than a second old.
postfix_settings() {
  local tmp rc=1
  keep_pristine
  tmp=$(mktemp -d)
  cp "$STATE/main.cf.pristine" "$tmp/main.cf"
  cp "$STATE/master.cf.pristine" "$tmp/master.cf"
  postconf -c "$tmp" -e "${MAIN_CF[@]}"
  postconf -c "$tmp" -P "${MASTER_CF[@]}"
  changed /etc/postfix/main.cf <"$tmp/main.cf" && rc=0
  changed /etc/postfix/master.cf <"$tmp/master.cf" && rc=0
  rm -rf "$tmp"
  return $rc
}

setup_postfix() {
  local reload= up=
  postfix status >/dev/null 2>&1 && up=1
  postfix_maps && reload=1
  postfix_settings && reload=1
  # Debian's systemd unit normally prepares the chroot (and copies the system resolver in).
  [[ -n $up ]] || /usr/lib/postfix/configure-instance.sh -
  # The chrooted smtp client resolves through dnsmasq; /etc/resolv.conf stays as it is.
  echo "nameserver 127.0.0.1" | changed /var/spool/postfix/etc/resolv.conf && reload=1
  # Like Debian's mail.log, not world-readable: the bot reads it through its sudo rule.
  [[ -e $PF_LOG ]] || install -m 640 -g adm /dev/null "$PF_LOG"
  chmod 640 "$PF_LOG"
  chgrp adm "$PF_LOG"
  if [[ -z $up ]]; then
    postfix check && postfix start
  elif [[ -n $reload ]]; then # `postfix check` walks the spool: only before a (re)load
    postfix check && postfix reload
  fi
}

# --- 6. SSH: users mailqbot and mailqbot-fc, sshd on 127.0.0.1:2222 -------------------------

# lab_user USER OPTIONS: a key-only login with the lab's client key and these key options.
lab_user() {
  local user=$1 options=$2 home
  id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash -c "mailqbot lab" "$user"
  # '*': no password can match, yet the account is not locked ("!" makes sshd refuse keys).
  [[ $(getent shadow "$user" | cut -d: -f2) == '*' ]] || usermod -p '*' "$user"
  home=$(getent passwd "$user" | cut -d: -f6)
  install -d -m 700 -o "$user" -g "$user" "$home/.ssh"
  printf '%s %s\n' "$options" "$(<"$STATE/id_ed25519.pub")" |
    changed "$home/.ssh/authorized_keys" 600 || true
  chown "$user:" "$home/.ssh/authorized_keys"
}

setup_users() {
  lab_user "$LAB_USER" 'restrict,from="127.0.0.1"'
  # Whatever the client asks for, sshd runs the wrapper (SSH_ORIGINAL_COMMAND holds the ask).
  lab_user "$WRAPPER_USER" "restrict,from=\"127.0.0.1\",command=\"$WRAPPER\""
  lab_user "$PARTIAL_USER" 'restrict,from="127.0.0.1"'
}

sshd_config() {
  cat <<EOF
# mailqbot lab sshd (written by tests/lab/lab.sh)
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $STATE/ssh_host_ed25519_key
PidFile $STATE/sshd.pid
AllowUsers $LAB_USER $WRAPPER_USER $PARTIAL_USER
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AuthorizedKeysFile .ssh/authorized_keys
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
MaxSessions 10
MaxStartups 30:30:100
EOF
}

start_sshd() {
  local conf=$STATE/sshd_config new=
  install -d -m 755 /run/sshd
  sshd_config | changed "$conf" && new=1
  /usr/sbin/sshd -t -f "$conf"
  if running "$STATE/sshd.pid" "$conf"; then
    [[ -z $new ]] || { kill -HUP "$(<"$STATE/sshd.pid")"; log "sshd reloaded"; }
  else
    rm -f "$STATE/sshd.pid"
    /usr/sbin/sshd -f "$conf" -E "$STATE/sshd.log"
    wait_for_file "$STATE/sshd.pid" 5 || die "sshd did not start, see $STATE/sshd.log"
    log "sshd started on 127.0.0.1:$SSH_PORT"
  fi
}

# --- 7. sudo rules and the wrapper, as deploy/ ships them ------------------------------------

# install_sudoers NAME FILE USER: FILE from deploy/ as /etc/sudoers.d/NAME, for USER (the
# file's only change: the user its User_Alias names).
install_sudoers() {
  local name=$1 file=$2 user=$3 text
  text=$(sed -E "s/^(User_Alias [A-Z_]+ = )mailqbot$/\1$user/" "$file")
  grep -qx "User_Alias [A-Z_]* = $user" <<<"$text" || die "$file names no user to replace"
  visudo -cqf - >/dev/null <<<"$text" || die "$file does not parse"
  changed "/etc/sudoers.d/$name" 440 <<<"$text" || true
}

# install_partial_sudoers: deploy/sudoers.mailqbot for PARTIAL_USER, its aliases renamed (they
# may not be defined twice), without the rules for `postsuper -d - active` and du.
install_partial_sudoers() {
  local text
  text=$(sed -E -e "s/^(User_Alias [A-Z_]+ = )mailqbot$/\1$PARTIAL_USER/" \
    -e 's#, /usr/sbin/postsuper -d - active$##' \
    -e '/^Cmnd_Alias MAILQBOT_DU = /d' -e 's/, MAILQBOT_DU$//' \
    -e 's/MAILQBOT_/MAILQBOT_PARTIAL_/g' "$DEPLOY/sudoers.mailqbot")
  grep -q 'MAILQBOT_PARTIAL_DU\|postsuper -d - active' <<<"$text" &&
    die "deploy/sudoers.mailqbot changed: update install_partial_sudoers"
  visudo -cqf - >/dev/null <<<"$text" || die "the partial sudoers file does not parse"
  changed /etc/sudoers.d/mailqbot-partial 440 <<<"$text" || true
}

setup_sudo() {
  install -d -m 755 "$(dirname "$WRAPPER")"
  changed "$WRAPPER" 755 <"$DEPLOY/mailqbot-wrapper" || true
  install_sudoers mailqbot "$DEPLOY/sudoers.mailqbot" "$LAB_USER"
  install_sudoers mailqbot-wrapper "$DEPLOY/sudoers.mailqbot-wrapper" "$WRAPPER_USER"
  install_partial_sudoers
  # The lab only: sudo logs every command it runs or refuses for the bot's users, so tests
  # can show that nothing ran (no syslog here).
  changed /etc/sudoers.d/mailqbot-lab-log 440 <<EOF_SUDOLOG || true
Defaults:$LAB_USER logfile=$SUDO_LOG
Defaults:$WRAPPER_USER logfile=$SUDO_LOG
Defaults:$PARTIAL_USER logfile=$SUDO_LOG
EOF_SUDOLOG
  visudo -cq >/dev/null || die "the installed sudoers files do not parse"
}

# --- 8. descriptions for tests and the bot ------------------------------------------------

write_descriptions() {
  destinations | "$(system_python)" -c '
import json, sys
state, port, log, wrapper_user, wrapper = sys.argv[1:]
domains = {cls: dom for cls, dom, _ in (line.split() for line in sys.stdin)}
print(json.dumps({
    "ssh_host": "127.0.0.1", "ssh_port": int(port), "ssh_user": "mailqbot",
    "wrapper_user": wrapper_user, "wrapper": wrapper,
    "private_key": f"{state}/id_ed25519", "known_hosts": f"{state}/known_hosts",
    "dns_server": "127.0.0.1", "dns_port": 53, "postfix_log": log,
    "domains": domains, "smtp": "127.0.0.1:25",
}, indent=2))' "$STATE" "$SSH_PORT" "$PF_LOG" "$WRAPPER_USER" "$WRAPPER" |
    changed "$STATE/lab.json" || true
  changed "$STATE/mailqbot.toml" <"$LAB_DIR/mailqbot.toml" || true
}

# --- subcommands ---------------------------------------------------------------------------

ssh_as() { # USER COMMAND...
  local user=$1
  shift
  ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=5 \
    -o UserKnownHostsFile="$STATE/known_hosts" -o GlobalKnownHostsFile=/dev/null \
    -o IdentitiesOnly=yes -i "$STATE/id_ed25519" -p "$SSH_PORT" "$user@127.0.0.1" "$@"
}

ssh_lab() { ssh_as "$LAB_USER" "$@"; }

wrapper_refuses() { # the forced-command login runs nothing but mailqbot's command lines
  [[ $(ssh_as "$WRAPPER_USER" /usr/bin/id 2>&1) == *"mailqbot-wrapper: refused"* ]]
}

cmd_up() {
  [[ $EUID -eq 0 ]] || die "run as root"
  install_packages
  setup_state
  start_dns
  start_destinations
  setup_postfix
  setup_users
  start_sshd
  setup_sudo
  write_descriptions
  cmd_status
}

cmd_down() {
  if postfix status >/dev/null 2>&1; then postfix stop 2>/dev/null; fi
  stop_pid "$STATE/sshd.pid" "$STATE/sshd_config"
  stop_pid "$STATE/dnsmasq.pid" dnsmasq
  stop_pid "$STATE/dnsmasq-public.pid" dnsmasq
  stop_pid "$STATE/destinations.pid" destinations.py
  log "down (packages, configuration and the queue are kept)"
}

check() { # LABEL COMMAND...: print the outcome; false if it failed
  local label=$1
  shift
  if "$@" >/dev/null 2>&1; then printf '  %-16s ok\n' "$label"; else printf '  %-16s DOWN\n' "$label"; return 1; fi
}

cmd_status() {
  local bad=0
  check postfix postfix status || bad=1
  check dnsmasq running "$STATE/dnsmasq.pid" dnsmasq || bad=1
  check "dnsmasq public" running "$STATE/dnsmasq-public.pid" dnsmasq || bad=1
  check destinations running "$STATE/destinations.pid" destinations.py || bad=1
  check sshd running "$STATE/sshd.pid" "$STATE/sshd_config" || bad=1
  check "ssh login" ssh_lab '/usr/sbin/postqueue -j | head -1' || bad=1
  check "sudo rules" ssh_lab 'sudo -n -l /usr/sbin/postcat -eh -q ABCDEF0123' || bad=1
  check "wrapper login" ssh_as "$WRAPPER_USER" "timeout -k 5 10 /usr/bin/du -sk /var/spool/postfix/deferred" || bad=1
  check "wrapper refuses" wrapper_refuses || bad=1
  return $bad
}

cmd_fill() {
  local py=$REPO/.venv/bin/python
  [[ -x $py ]] || py=$(system_python)
  exec "$py" "$LAB_DIR/fill.py" "$@"
}

cmd_clear() {
  postsuper -d ALL
  postfix reload 2>/dev/null # the queue manager forgets which destinations it found dead
}

usage() { sed -n '2,8s/^# \{0,1\}//p' "$0" >&2; exit 2; }

# The daemons started here (dnsmasq, destinations.py, sshd, Postfix) must not inherit the
# caller's descriptors: a `flock` lock on fd 3 would otherwise be held until they stop.
close_inherited_fds() {
  local fd n
  for fd in /proc/$$/fd/*; do
    n=${fd##*/}
    if ((n > 2 && n < 255)); then eval "exec $n>&-"; fi
  done
}

main() {
  [[ $# -ge 1 ]] || usage
  close_inherited_fds
  local cmd=$1
  shift
  case $cmd in
    up | down | status | clear) "cmd_$cmd" ;;
    fill) cmd_fill "$@" ;;
    *) usage ;;
  esac
}

main "$@"
