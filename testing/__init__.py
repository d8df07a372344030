"""Test and benchmark scaffolding (issue 11): fixtures that tests/ and bench/ import; never the product."""
