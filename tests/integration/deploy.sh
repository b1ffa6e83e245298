#!/usr/bin/env bash
# deploy/: the SAM template, the Terraform files and publish.sh checked against the repository by
# tests/tools/check_deploy.py (the SAM YAML through PyYAML with CloudFormation's tags, the
# Terraform files through HashiCorp's HCL parser in tests/tools/hcl_inspect), render.py and
# publish.sh run for real, and each check shown to fail on a broken copy of the files.
source "$(dirname "$0")/lib.bash"
R=$STASH_ROOT
checker() { python3 "$R/tests/tools/check_deploy.py" "$@"; }

# HashiCorp's HCL library as Debian packages it (golang-github-hashicorp-hcl-v2-dev), built in
# GOPATH mode: offline, no module download.
INSPECT=$BUILD/tools/hcl_inspect
build_inspect() {
  (cd "$R/tests/tools/hcl_inspect" &&
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$BUILD/go-cache GOFLAGS='' \
      go build -o "$INSPECT" .)
}
check "hcl_inspect builds against Debian's HCL package" build_inspect

# A copy of the repository's deploy/ to break, beside links to what it names.
M=$T/repo
mkdir -p "$M/build/layer"
cp -r "$R/deploy" "$M/deploy"
ln -s "$R/dashboards" "$M/dashboards"
ln -s "$R/sim" "$M/sim"
printf 'zip stand-in\n' >"$M/build/layer/stash-x86_64.zip"
printf 'zip stand-in\n' >"$M/build/layer/stash-arm64.zip"

# The zips `make layer` writes, as the Makefile names them (its $(LAYERS), for the default build
# folder, which is where the templates look).
LAYERS=$(cd "$R" && printf 'deploy-test-layers:\n\t@echo $(LAYERS)\n' |
  make -s --no-print-directory -f Makefile -f - deploy-test-layers BUILD=build)
expect_eq "make layer writes one zip per architecture" \
  "build/layer/stash-x86_64.zip build/layer/stash-arm64.zip" "$LAYERS"

check "SAM template: names only what exists, least-privilege role, both architectures" \
  checker sam "$R/deploy/sam/template.yaml" --root "$R" --layers "$LAYERS"
tf_check() {  # ROOT
  "$INSPECT" "$1"/deploy/terraform/*.tf >"$T/tf.json" &&
    checker terraform "$T/tf.json" --root "$1" --layers "$LAYERS" --inspect "$INSPECT"
}
check "Terraform: every reference declared, every file() exists, least privilege, both architectures" \
  tf_check "$R"

render_check() {
  python3 "$M/deploy/sam/render.py" --out "$M/build/sam/template.yaml" >/dev/null &&
    checker rendered "$M/build/sam/template.yaml" --template "$M/deploy/sam/template.yaml" \
      --root "$M" && checker sam "$M/deploy/sam/template.yaml" --root "$M" --layers "$LAYERS"
}
check "render.py: the deployable template carries dashboards/stash-dashboard.json unchanged" \
  render_check
check "render.py refuses when a layer zip is missing" \
  bash -c "mv '$M/build/layer/stash-arm64.zip' '$T/arm64.zip'; \
    ! python3 '$M/deploy/sam/render.py' --out '$T/r.yaml' 2>'$T/render.err'; rc=\$?; \
    mv '$T/arm64.zip' '$M/build/layer/stash-arm64.zip'; \
    [ \$rc = 0 ] && grep -q 'stash-arm64.zip.*make layer' '$T/render.err'"

publish_dry() {
  "$M/deploy/publish.sh" --dry-run --layer-dir "$M/build/layer" >"$T/publish.out" &&
    checker publish "$T/publish.out" --root "$M" --layer-dir "$M/build/layer"
}
check "publish.sh --dry-run: one publish-layer-version per architecture, right flags" publish_dry

# make test's default build (DEPS=lean, build/) has made the real zips: the templates' paths
# must find them there. (DEPS=system builds no layer; other build folders are not where the
# templates look.)
if [ "${STASH_DEPS:-lean}" = lean ] && [ "$BUILD" = "$R/build" ]; then
  real_layers() {
    python3 "$R/deploy/sam/render.py" --out "$T/real-sam.yaml" >/dev/null &&
      checker rendered "$T/real-sam.yaml" --template "$R/deploy/sam/template.yaml" --root "$R" &&
      "$R/deploy/publish.sh" --dry-run >"$T/real-publish.out" &&
      checker publish "$T/real-publish.out" --root "$R" --layer-dir "$R/build/layer"
  }
  check "the zips make layer built are the ones render.py and publish.sh take" real_layers
fi

# A stand-in for the AWS CLI: records its arguments, answers like --query LayerVersionArn would.
mkdir -p "$T/bin"
cat >"$T/bin/aws" <<'EOF'
#!/usr/bin/env bash
printf '%s\n' "$*" >>"$AWS_LOG"
for a in "$@"; do case $a in stash-*) name=$a ;; esac; done
echo "arn:aws:lambda:us-east-1:123456789012:layer:$name:7"
EOF
chmod +x "$T/bin/aws"
publish_real() {
  AWS_LOG=$T/aws.log PATH=$T/bin:$PATH "$M/deploy/publish.sh" --layer-dir "$M/build/layer" \
    >"$T/published" || return 1
  printf 'x86_64\tarn:aws:lambda:us-east-1:123456789012:layer:stash-x86_64:7\n' >"$T/want"
  printf 'arm64\tarn:aws:lambda:us-east-1:123456789012:layer:stash-arm64:7\n' >>"$T/want"
  diff "$T/want" "$T/published" && [ "$(wc -l <"$T/aws.log")" = 2 ] &&
    sed 's/^/aws /' "$T/aws.log" | diff - <(sed "s/'//g" "$T/publish.out")
}
check "publish.sh runs the dry run's commands and prints each layer version ARN" publish_real
publish_missing() {
  rm "$M/build/layer/stash-x86_64.zip"
  AWS_LOG=$T/aws2.log PATH=$T/bin:$PATH "$M/deploy/publish.sh" --layer-dir "$M/build/layer" \
    >"$T/pm.out" 2>"$T/pm.err"
  local rc=$?
  printf 'zip stand-in\n' >"$M/build/layer/stash-x86_64.zip"
  [ "$rc" != 0 ] && [ ! -s "$T/pm.out" ] && [ ! -e "$T/aws2.log" ] &&
    grep -q 'missing .*stash-x86_64.zip: run `make layer` first' "$T/pm.err"
}
check "publish.sh refuses with a missing zip, naming it, and publishes nothing" publish_missing

# Each check fails on a broken copy, with the reason named.
broken() {  # DESCRIPTION FILE SED EXPECTED-MESSAGE CHECK...
  local desc=$1 file=$M/$2 sed=$3 want=$4
  shift 4
  cp "$file" "$T/saved"
  sed -i "$sed" "$file"
  if cmp -s "$file" "$T/saved"; then
    echo "#   the edit '$sed' changed nothing in $2"
    _result 1 "$desc"
    return
  fi
  "$@" >"$T/broken.out" 2>&1
  local rc=$?
  cp "$T/saved" "$file"
  if [ "$rc" != 0 ] && grep -q -- "$want" "$T/broken.out"; then
    _result 0 "$desc"
  else
    sed 's/^/#   /' "$T/broken.out" | head -10
    _result 1 "$desc"
  fi
}
sam_m() { checker sam "$M/deploy/sam/template.yaml" --root "$M" --layers "$LAYERS"; }
T_SAM=deploy/sam/template.yaml
T_TF=deploy/terraform/main.tf
broken "SAM: a missing dashboard file fails" "$T_SAM" \
  's/stash-dashboard\.json/stash-dashbaord.json/' 'stash-dashbaord.json does not exist' sam_m
broken "SAM: a missing function folder fails" "$T_SAM" \
  's#CodeUri: ../../sim/functions/#CodeUri: ../../sim/function/#' 'sim/function does not exist' sam_m
broken "SAM: a missing handler file fails" "$T_SAM" \
  's/Handler: load-test.handler/Handler: load-tset.handler/' 'no sim/functions/load-tset' sam_m
broken "SAM: a layer zip make layer does not write fails" "$T_SAM" \
  's#build/layer/stash-arm64.zip#build/layer/stash-aarch64.zip#' 'not a file `make layer` writes' sam_m
broken "SAM: a Ref to nothing fails" "$T_SAM" \
  's/Resource: !Ref SecretArn/Resource: !Ref SecretArns/' 'Ref SecretArns is neither' sam_m
broken "SAM: a GetAtt of nothing fails" "$T_SAM" \
  's/!GetAtt ExampleLogGroup.Arn/!GetAtt ExampleLogGroups.Arn/' 'GetAtt ExampleLogGroups' sam_m
broken "SAM: an action beyond the allowed ones fails" "$T_SAM" \
  's/\[ssm:GetParameter, ssm:GetParameters\]/[ssm:GetParameter, ssm:GetParametersByPath]/' \
  'ssm:GetParametersByPath is not one of' sam_m
broken "SAM: a wildcard resource fails" "$T_SAM" \
  's/Resource: !Ref KmsKeyArn/Resource: "*"/' "Resource '\*' must name" sam_m
broken "SAM: one architecture only fails" "$T_SAM" \
  's/CompatibleArchitectures: \[arm64\]/CompatibleArchitectures: [x86_64]/' \
  'does not match its zip' sam_m
broken "SAM: the arm64 function given the x86_64 layer fails" "$T_SAM" \
  's/!If \[IsArm64, !Ref StashLayerArm64, !Ref StashLayerX8664\]/!If [IsArm64, !Ref StashLayerX8664, !Ref StashLayerArm64]/' \
  "with FunctionArchitecture=arm64 it gets layers built for \['x86_64'\]" sam_m
broken "SAM: an unknown CloudFormation tag fails" "$T_SAM" \
  's/!Equals \[!Ref FunctionArchitecture/!Equal [!Ref FunctionArchitecture/' "tag '!Equal'" sam_m
render_altered() {
  python3 "$M/deploy/sam/render.py" --out "$T/r2.yaml" >/dev/null &&
    sed -i 's/CacheHits/CacheHitz/' "$T/r2.yaml" || return 1
  ! checker rendered "$T/r2.yaml" --template "$M/deploy/sam/template.yaml" --root "$M" \
    >"$T/r2.out" && grep -q 'differs from dashboards/stash-dashboard.json' "$T/r2.out"
}
check "render.py check: a rendered dashboard that differs from the file fails" render_altered
broken "SAM: a missing nested alarm template fails" "$T_SAM" \
  's#dashboards/alarms/stash-alarms.yaml#dashboards/alarms/stash-alarm.yaml#' \
  'stash-alarm.yaml does not exist' sam_m
broken "SAM: a parameter the alarm template does not declare fails" "$T_SAM" \
  's/        AlarmTopicArn: !Ref AlarmTopicArn/        AlarmTopic: !Ref AlarmTopicArn/' \
  'parameter AlarmTopic is not one' sam_m
broken "Terraform: a missing dashboard file fails" "$T_TF" \
  's/stash-dashboard\.json/stash-dashbaord.json/' 'stash-dashbaord.json does not exist' tf_check "$M"
broken "Terraform: a missing function folder fails" "$T_TF" \
  's#/../../sim/functions"#/../../sim/function"#' 'sim/function does not exist' tf_check "$M"
broken "Terraform: a reference to an undeclared resource fails" "$T_TF" \
  's/role             = aws_iam_role.example.arn/role             = aws_iam_role.exemple.arn/' \
  'aws_iam_role.exemple.arn refers to nothing declared' tf_check "$M"
broken "Terraform: a reference to an undeclared variable fails" "$T_TF" \
  's/resources = \[var.secret_arn\]/resources = [var.secret_arns]/' \
  'var.secret_arns refers to nothing' tf_check "$M"
broken "Terraform: the arm64 function given the x86_64 layer fails" "$T_TF" \
  's/== "arm64" ? aws_lambda_layer_version.stash_arm64.arn : aws_lambda_layer_version.stash_x86_64.arn/== "arm64" ? aws_lambda_layer_version.stash_x86_64.arn : aws_lambda_layer_version.stash_arm64.arn/' \
  "with function_architecture=arm64 it gets layers built for \['x86_64'\]" tf_check "$M"
broken "Terraform: a wildcard resource fails" "$T_TF" \
  's/resources = \[var.secret_arn\]/resources = ["*"]/' "Resource '\*' must name" tf_check "$M"
broken "Terraform: an action beyond the allowed ones fails" "$T_TF" \
  's/actions   = \["kms:Decrypt"\]/actions   = ["kms:*"]/' 'kms:\* is not one of' tf_check "$M"
broken "Terraform: a layer zip make layer does not write fails" "$T_TF" \
  's#build/layer/stash-arm64.zip"$#build/layer/stash-arm.zip"#' \
  'not a file `make layer` writes' tf_check "$M"
broken "Terraform: a syntax error fails with its line" "$T_TF" \
  's/^resource "aws_cloudwatch_log_group" "example" {/resource "aws_cloudwatch_log_group" "example" {{/' \
  'main.tf:[0-9]*,[0-9-]*: Argument or block definition required' tf_check "$M"
broken "Terraform: a missing module folder fails" "$T_TF" \
  's#"../../dashboards/alarms"#"../../dashboards/alarm"#' 'dashboards/alarm does not exist' \
  tf_check "$M"
broken "Terraform: an input the module does not declare fails" "$T_TF" \
  's/  alarm_actions = var.alarm_actions/  alarm_action = var.alarm_actions/' \
  'input alarm_action is not a variable' tf_check "$M"
broken "publish.sh: runtimes over Lambda's 15 fail" deploy/compatible-runtimes.txt \
  '$a nodejs18.x' 'must list 1 to 15 runtimes' publish_dry

finish
