"""SFTP access: an asyncssh server on the node's asyncio bridge.

:mod:`protocols.sftp.paths` maps SFTP paths to bucket/key strictly;
:mod:`protocols.sftp.ops` holds a session's storage operations (trio side);
:mod:`protocols.sftp.session` runs each SSH session (the SFTP subsystem with a
request handler tolerant of real clients, or an exec command);
:mod:`protocols.sftp.commands` answers the hash commands rclone runs;
:mod:`protocols.sftp.listener` accepts SSH connections and checks logins;
:mod:`protocols.sftp.server` is one session's SFTP server, with the file
handles of :mod:`protocols.sftp.handles` and the statuses of
:mod:`protocols.sftp.statuses`.
"""
