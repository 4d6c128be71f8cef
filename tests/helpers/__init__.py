"""What the tests share: fakes, worlds to run the bot in, sample data and checks.

pytest puts ``tests/`` on the import path (``pythonpath`` in pyproject.toml), so a test
writes ``from helpers.fakes import FakeSlack``. Test modules do not import each other and
conftest.py files hold only fixtures: what two tests share lives here.

Slack
    fakes/          the fake Slack Web API (and Socket Mode) server, request signing, a
                    cuttable TCP relay (the database going away)
    refusal_cases   refusal cases and an in-process Slack front end over demo hosts
    blockkit        the Block Kit checks every rendered reply must pass
    listpage        reading a ``/mailq list`` reply's blocks

Hosts and worlds
    demo_world      demo hosts (in-process SSH servers) wired to real services and a database
    sshservers      fixtures (a plugin, see tests/conftest.py): scripted SSH servers, hosts
                    for them, an executor and a leak check
    onehost         one scripted SSH host and its inventory entry
    loghost         a scripted host that emulates the tools ``/mailq log`` runs
    fake_postfix    a Postfix host in this process for the approval races
    approve_proc    one bot process running one command (a script, run by path)
    simhosts        simulated Postfix hosts for the monitor
    monitoring      a monitor running over simulated hosts, posting to the fake Slack
    samplefill      months of monitor samples, made inside the database

Postfix data
    mta_samples     Postfix-exact formatters, samples and strategies for the parsers
    queues          random queues for the summary builders, and a brief summary's fields
    relay_refusals  relay providers' refusals, as published
    dnsserver       a small authoritative DNS server on loopback
    growth          how a function's time grows with its input

Commands and privileges
    all_commands    every remote command mailqbot can build, from its template functions
    standins        stand-in programs for commands whose programs are absent

The lab (tests marked ``lab``)
    labqueue        the lab's queue as the lab tests expect it
    labmail         marked messages put into the lab's queue and taken out again
    labbot          a real ``mailqbot serve`` against the lab and the fake Slack
    diaglab         configs and injected messages for the diagnose lab tests
"""
