# The memshift worker: docker compose builds it as the `worker` service.
FROM node:20-bookworm
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY activities ./activities
COPY workflows ./workflows
COPY workers ./workers
COPY client ./client
CMD ["node", "--import", "tsx", "workers/main.ts"]
