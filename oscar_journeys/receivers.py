def connect_receivers():
    pass
