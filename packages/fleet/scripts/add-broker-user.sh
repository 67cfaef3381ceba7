#!/bin/sh
# Adds (or replaces) a user in a Mosquitto password file for a kd-edge fleet and prints its password.
#
#   add-broker-user.sh PASSWD_FILE DEVICE_ID            a device: the username is its device id
#   add-broker-user.sh --service PASSWD_FILE NAME       a service user: kd-fleet or kd-dashboard
#
# The password is read from KD_BROKER_PASSWORD if set, otherwise 24 random bytes are generated (hex: safe in URLs and YAML);
# it is printed on stdout, once, for the device's agent config. The file is created when missing.
# Mosquitto reloads the file on SIGHUP (docker kill --signal=HUP <container>).
# The service names are RESERVED_DEVICE_IDS in packages/fleet/src/devices/reserved-ids.ts (kd-fleet ignores
# reports under them; the ACL denies them device topics): change both together (security-config.test.ts checks).
set -eu

usage() {
  echo "usage: $0 [--service] PASSWD_FILE USERNAME" >&2
  exit 2
}

service=false
if [ "${1:-}" = "--service" ]; then
  service=true
  shift
fi
[ "$#" -eq 2 ] || usage
file=$1
name=$2

if [ "$service" = true ]; then
  case "$name" in
    kd-fleet | kd-dashboard) ;;
    *)
      echo "$0: service users are kd-fleet and kd-dashboard (the ACL has rules for no other), not '$name'" >&2
      exit 2
      ;;
  esac
else
  # The protocol's device id; the ACL substitutes it for %u, so it must not contain +, # or /.
  if ! printf '%s' "$name" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'; then
    echo "$0: '$name' is not a device id ([A-Za-z0-9][A-Za-z0-9_-]{0,63})" >&2
    exit 2
  fi
  case "$name" in
    kd-fleet | kd-dashboard)
      echo "$0: '$name' is reserved for a service user; use --service" >&2
      exit 2
      ;;
  esac
fi

password=${KD_BROKER_PASSWORD:-}
if [ -z "$password" ]; then
  password=$(openssl rand -hex 24)
fi

if [ -e "$file" ]; then
  mosquitto_passwd -b "$file" "$name" "$password"
else
  # Mosquitto reads the file after dropping to its own user, so it must be readable by that user;
  # 0640 with the file's group set to mosquitto's is the tighter alternative.
  (umask 022 && mosquitto_passwd -c -b "$file" "$name" "$password")
fi
printf '%s\n' "$password"
