variable "layer_name" {
  description = "Prefix of the two layer names (<prefix>-x86_64 and <prefix>-arm64)."
  type        = string
  default     = "stash"
}

variable "function_architecture" {
  description = "Architecture of the example function; the layer of the same architecture is attached."
  type        = string
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.function_architecture)
    error_message = "function_architecture must be x86_64 or arm64."
  }
}

variable "function_name" {
  description = "Name of the example function (also names its log group and the dashboard)."
  type        = string
  default     = "stash-example"
}

variable "secret_arn" {
  description = "Full ARN of the one secret the example function may read (with its 6-character suffix)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+", var.secret_arn))
    error_message = "secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "parameter_name" {
  description = "Name of the one SSM parameter the example function may read, starting with \"/\"."
  type        = string
  validation {
    condition     = startswith(var.parameter_name, "/")
    error_message = "parameter_name must start with \"/\"."
  }
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key of the secret or SecureString parameter; empty when they use the AWS managed keys (aws/secretsmanager, aws/ssm), which need no kms:Decrypt in the role."
  type        = string
  default     = ""
}

variable "log_format" {
  description = "Lambda log format of the example function; JSON sets AWS_LAMBDA_LOG_FORMAT=JSON and stash then logs JSON objects."
  type        = string
  default     = "Text"
  validation {
    condition     = contains(["Text", "JSON"], var.log_format)
    error_message = "log_format must be Text or JSON."
  }
}

variable "alarm_actions" {
  description = "ARNs (an SNS topic) notified when one of stash's alarms fires or clears."
  type        = list(string)
  default     = []
}
