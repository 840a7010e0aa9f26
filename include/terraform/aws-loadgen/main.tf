data "aws_caller_identity" "this" {}
data "aws_partition" "this" {}

resource "aws_ecs_cluster" "this" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "load" {
  #checkov:skip=CKV_AWS_338: load-generator logs only explain one run: kept log_retention_days (default 14), not a year
  #checkov:skip=CKV_AWS_158: a customer managed key is optional (kms_key_arn); CloudWatch Logs encrypts with its own key otherwise
  name              = "/cachebench/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# Execution role: pull the image, write awslogs, read the points' AUTH secrets.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.this.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "secrets" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["arn:${data.aws_partition.this.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.this.account_id}:secret:cachebench/*/auth-*"]
  }
  # A secret encrypted with a customer managed key is read only with kms:Decrypt on
  # that key, and only through Secrets Manager here.
  # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_execution_IAM_role.html#task-execution-secrets
  # https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html#security-encryption-authz
  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == null ? [] : [var.secrets_kms_key_arn]
    content {
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "secrets" {
  name   = "cachebench-auth-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.secrets.json
}

# Task role: upload results below the prefix, nothing else.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

data "aws_iam_policy_document" "results" {
  statement {
    actions   = ["s3:PutObject"]
    resources = ["arn:${data.aws_partition.this.partition}:s3:::${var.results_bucket}/${var.results_prefix}/*"]
  }
}

resource "aws_iam_role_policy" "results" {
  name   = "cachebench-results"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.results.json
}

resource "aws_security_group" "load" {
  #checkov:skip=CKV2_AWS_5: attached at run time: cachebench passes it to ECS run_task for every load task (and the cache module admits it)
  name        = "${var.name}-tasks"
  description = "cachebench load generators: the engine port inside the VPC, HTTPS for S3/ECR/logs"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "engine" {
  security_group_id = aws_security_group.load.id
  description       = "Redis/Valkey engine port inside the VPC"
  ip_protocol       = "tcp"
  from_port         = 6379
  to_port           = 6379
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_vpc_security_group_egress_rule" "https" {
  #checkov:skip=CKV_AWS_382: S3, ECR, CloudWatch Logs and Secrets Manager are reached over HTTPS on public endpoints (through NAT) unless the VPC has endpoints for all of them
  security_group_id = aws_security_group.load.id
  description       = "HTTPS to S3, ECR, CloudWatch Logs and Secrets Manager"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_ecs_task_definition" "memtier" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "4096"
  memory                   = "8192"
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  volume {
    name = "scratch"
  }
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  container_definitions = jsonencode([
    {
      name                   = "memtier"
      image                  = var.image
      essential              = true
      readonlyRootFilesystem = true
      # cachebench sends a whole argv (/bin/sh -c <script>): no image ENTRYPOINT in front
      entryPoint = ["/usr/bin/env"]
      # memtier writes its results (and the AWS CLI its temp files) to /tmp: task storage
      mountPoints = [{ sourceVolume = "scratch", containerPath = "/tmp", readOnly = false }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.load.name
          awslogs-region        = var.region
          awslogs-stream-prefix = "memtier"
        }
      }
    }
  ])
}
