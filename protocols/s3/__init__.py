"""S3 protocol layer: sans-I/O codecs (errors, XML, SigV4, aws-chunked, checksums, names)."""
