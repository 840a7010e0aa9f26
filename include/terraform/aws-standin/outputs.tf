# Same names and shapes as include/terraform/aws/outputs.tf. auth_ref is the
# secret's name (ECS accepts a name or an ARN in `valueFrom`).
output "endpoint" {
  description = "Where to connect (shape of cachebench.models.Endpoint)."
  value = {
    host         = local.host
    port         = local.port
    cluster_mode = var.cluster_mode
    tls          = true
    auth_ref     = local.secret_name
    nodes        = local.nodes
    reader_host  = local.reader_host
  }
  depends_on = [terraform_data.replication_group]
}

output "replication_group_id" {
  description = "The replication group."
  value       = var.replication_group_id
  depends_on  = [terraform_data.replication_group]
}

output "member_clusters" {
  description = "Member cluster ids."
  value       = local.members
}

output "auth_secret_arn" {
  description = "Name of the AUTH secret (the stand-in cannot know the ARN)."
  value       = local.secret_name
}

output "log_groups" {
  description = "Log group names (the stand-in creates none)."
  value = {
    slow_log   = "/cachebench/${var.replication_group_id}/slow-log"
    engine_log = "/cachebench/${var.replication_group_id}/engine-log"
  }
}

output "dashboard_name" {
  description = "Dashboard name (the stand-in creates none)."
  value       = "cachebench-${var.replication_group_id}"
}
