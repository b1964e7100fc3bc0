"""What runs the core on a stream: the embedded runner over files (``runner``)
and the faust worker on Kafka (``worker``) with its plumbing — the batch
consumer, the changelog table and its recovery, the topics.
"""
