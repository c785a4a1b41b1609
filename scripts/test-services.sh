#!/usr/bin/env bash
# Make sure what the test suite talks to is installed and running:
# PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`) and its client.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

apt_install() {
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! command -v psql >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL ..."
    apt_install postgresql postgresql-client
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "starting PostgreSQL ..."
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 0.5
    done
fi

# Trust auth on loopback and a `test` database, as the suite expects.
if ! psql -h 127.0.0.1 -U postgres -d test -qAtc 'select 1' >/dev/null 2>&1; then
    version=$(ls /etc/postgresql | head -n1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
    psql -h 127.0.0.1 -U postgres -qc 'CREATE DATABASE test' postgres >/dev/null 2>&1 || true
fi
pg_isready -h 127.0.0.1 -p 5432

# The real clients the protocol tests drive.
missing=()
command -v sftp >/dev/null || missing+=(openssh-client)
command -v sshpass >/dev/null || missing+=(sshpass)
command -v s3cmd >/dev/null || missing+=(s3cmd)
# Debian's own rclone (1.60) is tested, not just any rclone on PATH (.venv/bin has 1.75).
[ -x /usr/bin/rclone ] || missing+=(rclone)
command -v node >/dev/null || missing+=(nodejs npm)
# Debian's Chromium, headless, for the share page test (tests/browser/).
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} ..."
    apt_install "${missing[@]}"
fi

# AWS SDK for JavaScript v3, for tests/s3/js.
if [ ! -d tests/s3/js/node_modules/@aws-sdk/client-s3 ]; then
    npm install --prefix tests/s3/js --no-audit --no-fund --silent
fi

# aws-cli pins its own botocore: keep it out of the project's venv.
if ! command -v aws >/dev/null && [ ! -x .tools/bin/aws ]; then
    echo "installing aws-cli into .tools/ ..."
    python3 -m venv .tools/awscli
    .tools/awscli/bin/pip install --quiet awscli
    mkdir -p .tools/bin
    ln -sf ../awscli/bin/aws .tools/bin/aws
fi
