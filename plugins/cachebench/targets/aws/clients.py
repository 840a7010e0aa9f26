"""boto3 clients through the Amazon provider's AwsBaseHook (the Airflow connection).

The connection (default ``aws_default``) supplies credentials, region and any
endpoint override; without it the hook falls back to boto3's default chain
(environment, instance role), which also honours AWS_ENDPOINT_URL.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


def client(
    service: str, region: str | None, conn_id: str | None = "aws_default", config: Any = None
) -> Any:
    """``config``: a botocore Config (timeouts, retries) for this client, else the defaults."""
    if conn_id:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(
            aws_conn_id=conn_id, client_type=service, region_name=region, config=config
        ).get_conn()
    import boto3

    return boto3.client(service, region_name=region, config=config)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a failed call (botocore's ClientError), else None."""
    return exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
