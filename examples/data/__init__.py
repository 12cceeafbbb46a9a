"""Example data for the example tools: seeds committed as text, databases built from them."""
