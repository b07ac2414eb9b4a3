from django.apps import AppConfig


class BrokerIntegrationConfig(AppConfig):
    name = "broker.integration"
    label = "broker_integration"
    verbose_name = "Broker"
