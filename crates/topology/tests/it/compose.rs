// TODO(owner)
