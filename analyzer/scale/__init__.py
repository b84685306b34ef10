"""Scale-out: the catalogue on Spark and Athena, over the same Parquet, published to S3.

The detections stay in DuckDB's dialect (``queries/*.sql``, one source of truth);
:mod:`analyzer.scale.dialects` transpiles them, and the staging views they read, to Spark SQL and
Trino/Athena SQL with sqlglot. :mod:`analyzer.scale.spark` runs them on a SparkSession and returns
alerts in the one alert shape; :mod:`analyzer.scale.athena` writes the Athena DDL and query files.
Publishing the dataset to S3 is a job: :mod:`analyzer.jobs.publish`.
"""
