from django.core.management.base import BaseCommand


class JourneysCommand(BaseCommand):
    """Base of the app's commands: ``help`` may be a lazy translation (argparse needs a str)."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.description = str(self.help)
        return parser
