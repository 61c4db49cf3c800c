"""Pipelines composed from the components, their compiler, local runner and KFP client."""
