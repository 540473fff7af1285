"""The consumer: drains SQS and stores each email as one S3 object, deleting a message only once stored."""
