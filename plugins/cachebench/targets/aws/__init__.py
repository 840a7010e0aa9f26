"""AWS helpers of the aws target: settings, clients, ECS load tasks, CloudWatch, S3 results.

Imported only by tasks and triggers (never at DAG parse time): boto3 and the
Amazon provider stay out of parsing.
"""
