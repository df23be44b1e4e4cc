"""``gctuner status``: a kubectl client, the report and the table. Not used by the agent inside an app."""
