"""gRPC servicers: requests into use-case calls, their results into responses and statuses."""
