# CloudWatch alarms on stash's EMF metrics for one function (Terraform, hashicorp/aws provider).
# The same four alarms, with the same defaults, are in stash-alarms.yaml for CloudFormation.
#   module "stash_alarms" {
#     source        = "./dashboards/alarms"
#     function_name = "orders-api"
#     alarm_actions = [aws_sns_topic.oncall.arn]
#   }
# Metrics are found by their exact dimension set: these use [FunctionName], what stash writes
# unless STASH_METRICS_DIMENSIONS adds names (then add them to every dimensions map below).
# A period with no data is not breaching: an idle function does not alarm.

variable "function_name" {
  type        = string
  description = "the FunctionName dimension of stash's metrics (the Lambda function name)"
}

variable "namespace" {
  type        = string
  default     = "Stash"
  description = "STASH_METRICS_NAMESPACE"
}

variable "period_seconds" {
  type    = number
  default = 300
  validation {
    condition     = contains([60, 300, 900, 3600], var.period_seconds)
    error_message = "period_seconds is 60, 300, 900 or 3600."
  }
}

variable "evaluation_periods" {
  type    = number
  default = 3
}

variable "hit_ratio_threshold_percent" {
  type        = number
  default     = 90
  description = "alarm when hits / (hits + misses + stale served) stays below this"
}

variable "throttles_threshold" {
  type        = number
  default     = 0
  description = "alarm when UpstreamThrottles in a period is above this"
}

variable "error_rate_percent_threshold" {
  type        = number
  default     = 5
  description = "alarm when UpstreamErrors / UpstreamCalls stays above this"
}

variable "overhead_p99_threshold_ms" {
  type        = number
  default     = 50
  description = "alarm when ExtensionOverhead p99 (billed time stash adds after the response) stays above this"
}

variable "alarm_actions" {
  type        = list(string)
  default     = []
  description = "ARNs notified on ALARM and OK (an SNS topic)"
}

resource "aws_cloudwatch_metric_alarm" "hit_ratio_low" {
  alarm_name          = "stash-${var.function_name}-hit-ratio-low"
  alarm_description   = "stash cache hit ratio of ${var.function_name} below ${var.hit_ratio_threshold_percent} %"
  comparison_operator = "LessThanThreshold"
  threshold           = var.hit_ratio_threshold_percent
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "hits"
    return_data = false
    metric {
      namespace   = var.namespace
      metric_name = "CacheHits"
      dimensions  = { FunctionName = var.function_name }
      period      = var.period_seconds
      stat        = "Sum"
    }
  }
  metric_query {
    id          = "misses"
    return_data = false
    metric {
      namespace   = var.namespace
      metric_name = "CacheMisses"
      dimensions  = { FunctionName = var.function_name }
      period      = var.period_seconds
      stat        = "Sum"
    }
  }
  metric_query {
    id          = "stale"
    return_data = false
    metric {
      namespace   = var.namespace
      metric_name = "CacheStaleServed"
      dimensions  = { FunctionName = var.function_name }
      period      = var.period_seconds
      stat        = "Sum"
    }
  }
  # No false branch: a period without a lookup has no data point (not breaching).
  metric_query {
    id          = "ratio"
    label       = "hit ratio %"
    expression  = "IF(hits + misses + stale > 0, 100 * hits / (hits + misses + stale))"
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "upstream_throttled" {
  alarm_name          = "stash-${var.function_name}-upstream-throttled"
  alarm_description   = "Secrets Manager or Parameter Store throttled stash's calls for ${var.function_name}"
  namespace           = var.namespace
  metric_name         = "UpstreamThrottles"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Sum"
  period              = var.period_seconds
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.throttles_threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "upstream_error_rate" {
  alarm_name          = "stash-${var.function_name}-upstream-error-rate"
  alarm_description   = "more than ${var.error_rate_percent_threshold} % of stash's upstream calls for ${var.function_name} failed"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_percent_threshold
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "errors"
    return_data = false
    metric {
      namespace   = var.namespace
      metric_name = "UpstreamErrors"
      dimensions  = { FunctionName = var.function_name }
      period      = var.period_seconds
      stat        = "Sum"
    }
  }
  metric_query {
    id          = "calls"
    return_data = false
    metric {
      namespace   = var.namespace
      metric_name = "UpstreamCalls"
      dimensions  = { FunctionName = var.function_name }
      period      = var.period_seconds
      stat        = "Sum"
    }
  }
  metric_query {
    id          = "rate"
    label       = "upstream error rate %"
    expression  = "IF(calls > 0, 100 * errors / calls)"
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "extension_overhead_p99" {
  alarm_name          = "stash-${var.function_name}-extension-overhead-p99"
  alarm_description   = "ExtensionOverhead p99 of ${var.function_name} above ${var.overhead_p99_threshold_ms} ms"
  namespace           = var.namespace
  metric_name         = "ExtensionOverhead"
  dimensions          = { FunctionName = var.function_name }
  extended_statistic  = "p99"
  period              = var.period_seconds
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.overhead_p99_threshold_ms
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

output "alarm_arns" {
  value = {
    hit_ratio_low          = aws_cloudwatch_metric_alarm.hit_ratio_low.arn
    upstream_throttled     = aws_cloudwatch_metric_alarm.upstream_throttled.arn
    upstream_error_rate    = aws_cloudwatch_metric_alarm.upstream_error_rate.arn
    extension_overhead_p99 = aws_cloudwatch_metric_alarm.extension_overhead_p99.arn
  }
}
