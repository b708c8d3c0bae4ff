"""Tests of the deployment files: Dockerfile and deploy/kubernetes."""
