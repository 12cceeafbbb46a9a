"""Files of a job: the input files a producer attaches (`inputs`) and the files its run
produced, downloaded when it ends and kept in Redis, a directory or an S3-compatible
bucket (`produced`, `storage`, `s3`)."""
