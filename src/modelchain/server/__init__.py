"""The HTTP service (`modelchain serve`): a thin FastAPI layer over `modelchain.Ledger`.

Importing this package imports nothing heavy; `modelchain.server.app` pulls in FastAPI.
"""
