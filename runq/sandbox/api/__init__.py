"""The sandbox's HTTP API: one route module per API family and the helpers they share."""
