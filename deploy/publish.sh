#!/usr/bin/env bash
# publish.sh: publishes the two layer zips that `make layer` writes, one layer per architecture,
# with the AWS CLI, and prints each new layer version's ARN.
#
#   deploy/publish.sh [--dry-run] [--layer-name stash] [--region REGION] [--layer-dir build/layer]
#
#   --dry-run      print the aws commands instead of running them (the AWS CLI is not needed)
#   --layer-name   prefix of the layer names: <prefix>-x86_64 and <prefix>-arm64 (default stash)
#   --region       passed to the AWS CLI (default: its own configuration)
#   --layer-dir    where stash-x86_64.zip and stash-arm64.zip are (default build/layer)
#
# Both zips are checked before anything is published, so a missing one publishes nothing.
# The runtimes are deploy/compatible-runtimes.txt (the list the SAM and Terraform files use too).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

dry_run=0
layer_name=stash
region=
layer_dir=$root/build/layer

# One word as a shell would need it typed: bare when safe, else in single quotes.
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

die() {
  echo "publish.sh: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --layer-name) [ $# -ge 2 ] || die "--layer-name needs a value"; layer_name=$2; shift ;;
    --region) [ $# -ge 2 ] || die "--region needs a value"; region=$2; shift ;;
    --layer-dir) [ $# -ge 2 ] || die "--layer-dir needs a value"; layer_dir=$2; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

# Lambda's layer names: letters, digits, - and _, at most 140 characters with the suffix.
[[ $layer_name =~ ^[A-Za-z0-9_-]{1,120}$ ]] ||
  die "--layer-name '$layer_name' is not a valid layer name (letters, digits, - and _; at most 120)"

runtimes=()
while IFS= read -r r; do
  [ -n "$r" ] && runtimes+=("$r")
done <"$here/compatible-runtimes.txt"
if [ ${#runtimes[@]} -lt 1 ] || [ ${#runtimes[@]} -gt 15 ]; then
  die "deploy/compatible-runtimes.txt must list 1 to 15 runtimes (Lambda's limit), not ${#runtimes[@]}"
fi

archs=(x86_64 arm64)
missing=()
for arch in "${archs[@]}"; do
  [ -f "$layer_dir/stash-$arch.zip" ] || missing+=("$layer_dir/stash-$arch.zip")
done
if [ ${#missing[@]} -gt 0 ]; then
  die "missing ${missing[*]}: run \`make layer\` first (nothing was published)"
fi
if [ "$dry_run" = 0 ] && ! command -v aws >/dev/null; then
  die "the AWS CLI (aws) is not on PATH; install it, or use --dry-run to see the commands"
fi

for arch in "${archs[@]}"; do
  cmd=(aws lambda publish-layer-version
    --layer-name "$layer_name-$arch"
    --description "stash, a cache for Secrets Manager and Parameter Store ($arch)"
    --zip-file "fileb://$layer_dir/stash-$arch.zip"
    --compatible-architectures "$arch"
    --compatible-runtimes "${runtimes[@]}"
    --query LayerVersionArn --output text)
  [ -n "$region" ] && cmd+=(--region "$region")
  if [ "$dry_run" = 1 ]; then
    line=
    for word in "${cmd[@]}"; do
      line+="${line:+ }$(quote "$word")"
    done
    printf '%s\n' "$line"
    continue
  fi
  arn=$("${cmd[@]}") || die "publishing $layer_name-$arch failed (the AWS CLI said why above)"
  printf '%s\t%s\n' "$arch" "$arn"
done
