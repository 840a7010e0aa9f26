output "cachebench_aws_settings" {
  description = "The ECS part of the Airflow Variable cachebench_aws (add region, vpc_id, subnet_ids, loadgen_subnet_ids, state_bucket)."
  value = {
    ecs_cluster               = aws_ecs_cluster.this.name
    task_definition           = aws_ecs_task_definition.memtier.family
    container_name            = "memtier"
    loadgen_security_group_id = aws_security_group.load.id
    results_bucket            = var.results_bucket
    results_prefix            = var.results_prefix
  }
}
