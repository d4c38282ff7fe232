def get_transform(vars, context):
    return {"greeting": "Hello", "count": len(vars["name"]) + 1}
