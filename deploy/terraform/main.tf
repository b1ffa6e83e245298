# stash as a Lambda layer for x86_64 and arm64, an example function that reads one secret and one
# parameter through it with a least-privilege role, and stash's CloudWatch dashboard.
#
#   make layer                         # build/layer/stash-x86_64.zip, build/layer/stash-arm64.zip
#   cd deploy/terraform && terraform init && terraform apply \
#     -var secret_arn=arn:aws:secretsmanager:...:secret:prod/db-AbCdEf -var parameter_name=/app/prod/config

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # The layer's runtime list, shared with deploy/publish.sh and the SAM template.
  compatible_runtimes = split("\n", trimspace(file("${path.module}/../compatible-runtimes.txt")))
  parameter_arn       = "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:parameter${var.parameter_name}"
}

resource "aws_lambda_layer_version" "stash_x86_64" {
  layer_name               = "${var.layer_name}-x86_64"
  description              = "stash, a cache for Secrets Manager and Parameter Store (x86_64)"
  filename                 = "${path.module}/../../build/layer/stash-x86_64.zip"
  source_code_hash         = filebase64sha256("${path.module}/../../build/layer/stash-x86_64.zip")
  compatible_architectures = ["x86_64"]
  compatible_runtimes      = local.compatible_runtimes
  skip_destroy             = true
}

resource "aws_lambda_layer_version" "stash_arm64" {
  layer_name               = "${var.layer_name}-arm64"
  description              = "stash, a cache for Secrets Manager and Parameter Store (arm64)"
  filename                 = "${path.module}/../../build/layer/stash-arm64.zip"
  source_code_hash         = filebase64sha256("${path.module}/../../build/layer/stash-arm64.zip")
  compatible_architectures = ["arm64"]
  compatible_runtimes      = local.compatible_runtimes
  skip_destroy             = true
}

# The function's own log group, so the role can be limited to it (no logs:CreateLogGroup).
resource "aws_cloudwatch_log_group" "example" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = 14
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# What the function may do, and nothing else: read the named secret and parameter, decrypt with
# the named key (only through those two services), and write to its own log group (without which
# Lambda cannot store the function's output, stash's EMF metrics included).
data "aws_iam_policy_document" "example" {
  statement {
    sid       = "ReadTheSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.secret_arn]
  }
  # BatchGetSecretValue has no resource type: AWS requires "*" here, and checks GetSecretValue on
  # each secret of the batch, which the statement above limits.
  statement {
    sid       = "BatchReadNamedSecretsOnly"
    actions   = ["secretsmanager:BatchGetSecretValue"]
    resources = ["*"]
  }
  statement {
    sid       = "ReadTheParameter"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = [local.parameter_arn]
  }
  dynamic "statement" {
    for_each = var.kms_key_arn == "" ? [] : [var.kms_key_arn]
    content {
      sid       = "DecryptWithTheKeyThroughSecretsManagerOrSsm"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values = [
          "secretsmanager.${data.aws_region.current.name}.amazonaws.com",
          "ssm.${data.aws_region.current.name}.amazonaws.com",
        ]
      }
    }
  }
  statement {
    sid       = "WriteItsOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.example.arn}:*"]
  }
}

resource "aws_iam_role" "example" {
  name_prefix        = "stash-example-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "example" {
  name   = "stash-read-named-secrets"
  role   = aws_iam_role.example.id
  policy = data.aws_iam_policy_document.example.json
}

# sim/functions/load-test.mjs reads PARAM_NAME and SECRET_ID through the extension on every invoke
# and returns only their sizes and the time the reads took.
data "archive_file" "example" {
  type        = "zip"
  source_dir  = "${path.module}/../../sim/functions"
  output_path = "${path.module}/../../build/terraform/example-function.zip"
}

resource "aws_lambda_function" "example" {
  function_name    = var.function_name
  filename         = data.archive_file.example.output_path
  source_code_hash = data.archive_file.example.output_base64sha256
  handler          = "load-test.handler"
  runtime          = "nodejs22.x"
  architectures    = [var.function_architecture]
  memory_size      = 256
  timeout          = 10
  role             = aws_iam_role.example.arn
  layers = [
    var.function_architecture == "arm64" ? aws_lambda_layer_version.stash_arm64.arn : aws_lambda_layer_version.stash_x86_64.arn
  ]
  logging_config {
    log_format = var.log_format
    log_group  = aws_cloudwatch_log_group.example.name
  }
  environment {
    variables = {
      SECRET_ID               = var.secret_arn
      PARAM_NAME              = var.parameter_name
      SECRETS_MANAGER_TTL     = "300"
      SSM_PARAMETER_STORE_TTL = "300"
    }
  }
  depends_on = [aws_iam_role_policy.example]
}

# The body is dashboards/stash-dashboard.json itself, its "us-east-1" regions made this one's.
resource "aws_cloudwatch_dashboard" "stash" {
  dashboard_name = "${var.function_name}-stash"
  dashboard_body = replace(file("${path.module}/../../dashboards/stash-dashboard.json"), "\"us-east-1\"", "\"${data.aws_region.current.name}\"")
}

# Hit ratio, upstream throttles, upstream error rate and extension overhead of the example
# function, with the alarm module's default thresholds.
module "stash_alarms" {
  source        = "../../dashboards/alarms"
  function_name = aws_lambda_function.example.function_name
  alarm_actions = var.alarm_actions
}
