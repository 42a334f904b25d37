module cofre.local/devcluster/pause

go 1.22
