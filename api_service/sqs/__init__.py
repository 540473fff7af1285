"""The API's SQS path: the adapter (queue.py) over a lean SigV4 JSON client (json_client.py) and its HTTP/1.1 pool."""
