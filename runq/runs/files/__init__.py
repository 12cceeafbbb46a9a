"""Files of a job: the input files a producer attaches (`inputs`) and the files its run
produced, downloaded when it ends and kept in Redis or a directory (`produced`,
`storage`)."""
