"""The simulated backend behind the routes: the model, objects, state, limits and faults."""
