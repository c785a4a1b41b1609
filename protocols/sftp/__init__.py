"""SFTP access: an asyncssh server on the node's asyncio bridge.

:mod:`protocols.sftp.paths` maps SFTP paths to bucket/key strictly;
:mod:`protocols.sftp.server` is the SSH/SFTP server and its file handles.
"""
