"""Operators of the campaign DAG beyond plain @task functions."""
