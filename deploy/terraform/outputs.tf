output "layer_x86_64_arn" {
  description = "stash layer version for x86_64 functions"
  value       = aws_lambda_layer_version.stash_x86_64.arn
}

output "layer_arm64_arn" {
  description = "stash layer version for arm64 functions"
  value       = aws_lambda_layer_version.stash_arm64.arn
}

output "example_function_name" {
  value = aws_lambda_function.example.function_name
}

output "dashboard_name" {
  value = aws_cloudwatch_dashboard.stash.dashboard_name
}

output "alarm_arns" {
  value = module.stash_alarms.alarm_arns
}
